// Package netmon watches the box's network addresses and tells whoever
// registered when they change: the board's "no network" fault and a call's
// ICE restart both follow the one Monitor (tailscale's net/netmon is the
// model: one monitor, change callbacks).
//
// It polls (every 500 ms by default) and only while someone listens: a
// netlink subscription would notice sooner on Linux, but polling works the
// same on every OS and in pion's virtual networks, which the call tests use.
package netmon

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultEvery is how often the addresses are read while someone listens:
// a new or vanished address (DHCP, another access point, a cable) restarts
// a call's ICE within it, instead of after the disconnected timeout.
const DefaultEvery = 500 * time.Millisecond

// Interface is one network interface as a Source lists it.
type Interface struct {
	Name  string
	Flags net.Flags
	Addrs []net.Addr
}

// Source lists the interfaces (the OS's, or a virtual network's).
type Source func() ([]Interface, error)

// OS lists the operating system's interfaces.
func OS() ([]Interface, error) {
	list, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(list))
	for _, ifc := range list {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		out = append(out, Interface{Name: ifc.Name, Flags: ifc.Flags, Addrs: addrs})
	}
	return out, nil
}

// State is the box's addresses at one time: those of the interfaces that
// are up, loopback excluded, sorted.
type State struct {
	Addrs []netip.Addr
}

// Read takes a State from src.
func Read(src Source) State {
	ifs, err := src()
	if err != nil {
		return State{}
	}
	var s State
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		for _, a := range ifc.Addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				s.Addrs = append(s.Addrs, addr.Unmap())
			}
		}
	}
	slices.SortFunc(s.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return s
}

// Equal reports whether s and o hold the same addresses.
func (s State) Equal(o State) bool { return slices.Equal(s.Addrs, o.Addrs) }

// IPv4 lists the IPv4 addresses (those calls use), comma-separated.
func (s State) IPv4() string {
	var out []string
	for _, a := range s.Addrs {
		if a.Is4() {
			out = append(out, a.String())
		}
	}
	return strings.Join(out, ",")
}

// HasRoutable reports whether some address is one a phone could reach: not
// loopback, not link-local, not unspecified (phones open the page by IPv4
// or by name, which mDNS answers with routable addresses).
func (s State) HasRoutable() bool {
	for _, a := range s.Addrs {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified() {
			return true
		}
	}
	return false
}

// Monitor polls a Source while callbacks are registered and calls them
// when the State changes.
type Monitor struct {
	src   Source
	every time.Duration

	mu     sync.Mutex
	cur    State
	cbs    map[int]func(old, new State)
	nextID int
	stop   chan struct{} // closes the poller; nil while none runs
	done   chan struct{}
}

// New returns a Monitor of src (nil: the OS) polling every every (0:
// DefaultEvery). It reads the State once now.
func New(src Source, every time.Duration) *Monitor {
	if src == nil {
		src = OS
	}
	if every <= 0 {
		every = DefaultEvery
	}
	return &Monitor{src: src, every: every, cur: Read(src), cbs: map[int]func(old, new State){}}
}

// Current is the last State read.
func (m *Monitor) Current() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// RegisterChangeCallback calls f(old, new) after every change, from the
// monitor's goroutine (f must not block). The first callback starts the
// polling, the last unregister stops it.
func (m *Monitor) RegisterChangeCallback(f func(old, new State)) (unregister func()) {
	m.mu.Lock()
	id := m.nextID
	m.nextID++
	m.cbs[id] = f
	if m.stop == nil {
		// Start from the present, not from a State read long ago.
		m.cur = Read(m.src)
		m.stop, m.done = make(chan struct{}), make(chan struct{})
		go m.poll(m.stop, m.done)
	}
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.cbs, id)
			var stop, done chan struct{}
			if len(m.cbs) == 0 && m.stop != nil {
				stop, done = m.stop, m.done
				m.stop, m.done = nil, nil
			}
			m.mu.Unlock()
			if stop != nil {
				close(stop)
				<-done
			}
		})
	}
}

func (m *Monitor) poll(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		m.Poll()
	}
}

// Poll reads the State now and calls the callbacks if it changed.
func (m *Monitor) Poll() {
	s := Read(m.src)
	m.mu.Lock()
	old := m.cur
	if old.Equal(s) {
		m.mu.Unlock()
		return
	}
	m.cur = s
	cbs := make([]func(old, new State), 0, len(m.cbs))
	for _, f := range m.cbs {
		cbs = append(cbs, f)
	}
	m.mu.Unlock()
	for _, f := range cbs {
		f(old, s)
	}
}
