package netmon

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNet is a Source whose addresses a test changes.
type fakeNet struct {
	mu  sync.Mutex
	ifs []Interface
}

func (f *fakeNet) list() ([]Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Interface(nil), f.ifs...), nil
}

func (f *fakeNet) set(ifs ...Interface) { f.mu.Lock(); f.ifs = ifs; f.mu.Unlock() }

func ifc(name string, flags net.Flags, cidrs ...string) Interface {
	var addrs []net.Addr
	for _, c := range cidrs {
		ip, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		n.IP = ip
		addrs = append(addrs, n)
	}
	return Interface{Name: name, Flags: flags, Addrs: addrs}
}

func TestState(t *testing.T) {
	up := net.FlagUp
	tests := []struct {
		name     string
		ifs      []Interface
		ipv4     string
		routable bool
	}{
		{"nothing", nil, "", false},
		{"loopback only", []Interface{ifc("lo", up|net.FlagLoopback, "127.0.0.1/8", "::1/128")}, "", false},
		{"down", []Interface{ifc("eth0", 0, "192.168.1.5/24")}, "", false},
		{"link-local only", []Interface{ifc("eth0", up, "169.254.3.4/16", "fe80::1/64")}, "169.254.3.4", false},
		{"DHCP lease", []Interface{ifc("eth0", up, "192.168.1.5/24")}, "192.168.1.5", true},
		{"IPv6 only", []Interface{ifc("wlan0", up, "2001:db8::5/64")}, "", true},
		{"two, sorted", []Interface{ifc("wlan0", up, "10.0.0.9/24"), ifc("eth0", up, "10.0.0.2/24")}, "10.0.0.2,10.0.0.9", true},
	}
	for _, tt := range tests {
		f := &fakeNet{ifs: tt.ifs}
		s := Read(f.list)
		if s.IPv4() != tt.ipv4 || s.HasRoutable() != tt.routable {
			t.Errorf("%s: IPv4 %q routable %v, want %q %v", tt.name, s.IPv4(), s.HasRoutable(), tt.ipv4, tt.routable)
		}
	}
}

// Callbacks hear each change once, with the old and new state; polling
// runs only while someone listens.
func TestMonitorCallbacks(t *testing.T) {
	f := &fakeNet{}
	f.set(ifc("eth0", net.FlagUp, "192.168.1.5/24"))
	m := New(f.list, 5*time.Millisecond)
	before := runtime.NumGoroutine()
	changes := make(chan [2]string, 10)
	var second atomic.Int32
	un1 := m.RegisterChangeCallback(func(old, new State) { changes <- [2]string{old.IPv4(), new.IPv4()} })
	un2 := m.RegisterChangeCallback(func(old, new State) { second.Add(1) })
	if n := runtime.NumGoroutine(); n != before+1 {
		t.Errorf("%d goroutines with two callbacks, %d before: want one poller", n, before)
	}
	f.set(ifc("eth0", net.FlagUp, "192.168.1.5/24"), ifc("wlan0", net.FlagUp, "10.0.0.7/24"))
	select {
	case c := <-changes:
		if c != [2]string{"192.168.1.5", "10.0.0.7,192.168.1.5"} {
			t.Fatalf("change %v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported within 5 s")
	}
	for end := time.Now().Add(5 * time.Second); second.Load() == 0 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	// Nothing more without a change.
	m.Poll()
	select {
	case c := <-changes:
		t.Fatalf("spurious change %v", c)
	default:
	}
	un2()
	if second.Load() != 1 {
		t.Errorf("second callback heard %d changes, want 1", second.Load())
	}
	un1()
	un1() // twice is harmless
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("the poller still runs with no callback: %d goroutines, %d before", n, before)
	}
	if m.Current().IPv4() != "10.0.0.7,192.168.1.5" {
		t.Errorf("current %q", m.Current().IPv4())
	}
}
