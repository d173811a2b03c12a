package relay

import "testing"

// minAllocs is testing.AllocsPerRun repeated up to five times, returning
// the least: AllocsPerRun counts every goroutine's allocations, and a
// background goroutine of an earlier test (or the runtime) allocating
// during one measurement says nothing about f. (As tailscale's
// tstest.MinAllocsPerRun.)
func minAllocs(runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for i := 0; i < 4 && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}
