package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/callbox/callbox/peer/box"
	"github.com/callbox/callbox/peer/proto"
)

// boxClient dials from a loopback source address of box i's own
// (127.1.0.2, 127.1.0.3, ...): the hub limits what one address may do
// (connections, new identities per hour, pairing codes), as boxes on the
// internet each come from their own NAT, and one address has only ~28,000
// ephemeral ports towards one hub port.
func boxClient(i int) *http.Client {
	ip := net.IPv4(127, byte(1+i/62500), byte(i/250%250), byte(2+i%250))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// runBoxes registers n boxes, concurrency at a time, keeps every
// connection open, prints a JSON report, and holds the connections until
// stdin closes.
func runBoxes(args []string) int {
	fs := flag.NewFlagSet("boxes", flag.ContinueOnError)
	url := fs.String("url", "", "hub WebSocket URL")
	n := fs.Int("n", 1000, "boxes")
	conc := fs.Int("concurrency", 64, "registrations in flight")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	raiseFileLimit()
	conns := make([]*websocket.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := register(*url, boxClient(i), i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := 0; i < *n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := boxesReport{Registered: *n - int(failed.Load()), Seconds: secs, Failed: int(failed.Load())}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, os.Stdin) // hold the boxes until told
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
	return 0
}

// register is one box's registration: a fresh identity, a signed hello,
// the welcome. The connection then stays open, unread (nothing more comes
// to a box with no peers).
func register(url string, hc *http.Client, i int) (*websocket.Conn, error) {
	id, err := proto.NewIdentity()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, proto.NonceSize)
	_, _ = rand.Read(nonce)
	hello := proto.NewHello(id, "bench-"+strconv.Itoa(i), time.Now().UnixMilli(), nonce)
	b, _ := json.Marshal(&hello)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		c.CloseNow()
		return nil, err
	}
	_, b, err = c.Read(ctx)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	m, err := proto.ParseMessage(b)
	if err != nil || m.Type != proto.TypeWelcome {
		c.CloseNow()
		return nil, fmt.Errorf("no welcome: %s", b)
	}
	return c, nil
}

// runPairs pairs boxes on instance a with boxes on instance b (code asked
// on a, entered on b), then sends signals from the a side to the b side at
// each rate for the duration and prints their latencies as JSON, one line
// per rate. Sender and receiver are in this process: one clock.
func runPairs(args []string) int {
	fs := flag.NewFlagSet("pairs", flag.ContinueOnError)
	urlA := fs.String("a", "", "instance one's WebSocket URL")
	urlB := fs.String("b", "", "instance two's WebSocket URL")
	pairs := fs.Int("pairs", 100, "box pairs")
	rates := fs.String("rates", "1000", "total signal rates per second, comma-separated")
	dur := fs.Duration("duration", 5*time.Second, "length of each run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	raiseFileLimit()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "hubbench-pairs")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	nbox := 0
	dial := func(url, name string) (*box.Client, error) {
		id, err := proto.NewIdentity()
		if err != nil {
			return nil, err
		}
		nbox++
		return box.Dial(ctx, box.ClientConfig{HubURL: url, Identity: id, Name: name, DataDir: dir + "/" + id.ID, Log: log, HTTPClient: boxClient(nbox)})
	}
	type pair struct{ a, b *box.Client }
	ps := make([]pair, *pairs)
	for i := range ps {
		a, err := dial(*urlA, fmt.Sprintf("a%d", i))
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial a:", err)
			return 1
		}
		b, err := dial(*urlB, fmt.Sprintf("b%d", i))
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial b:", err)
			return 1
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = pairBoxes(pctx, a, b)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "pair:", err)
			return 1
		}
		ps[i] = pair{a, b}
	}
	// Receivers: every signal carries its send time.
	var mu sync.Mutex
	var lat []time.Duration
	var received atomic.Int64
	for _, p := range ps {
		go func(c *box.Client) {
			for s := range c.Signals() {
				ts, _, _ := strings.Cut(s.SDP, " ")
				ns, err := strconv.ParseInt(ts, 10, 64)
				if err != nil {
					continue
				}
				d := time.Duration(time.Now().UnixNano() - ns)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				received.Add(1)
			}
		}(p.b)
	}
	pad := strings.Repeat("a=candidate:1 1 udp 2130706431 192.0.2.1 54321 typ host\r\n", 20)
	for _, rs := range strings.Split(*rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil || rate <= 0 {
			fmt.Fprintln(os.Stderr, "bad rate", rs)
			return 2
		}
		mu.Lock()
		lat = lat[:0]
		mu.Unlock()
		received.Store(0)
		var sent atomic.Int64
		period := time.Duration(float64(time.Second) * float64(len(ps)) / float64(rate))
		end := time.Now().Add(*dur)
		var wg sync.WaitGroup
		for i, p := range ps {
			wg.Add(1)
			go func(i int, p pair) {
				defer wg.Done()
				// Stagger the senders over one period.
				time.Sleep(period * time.Duration(i) / time.Duration(len(ps)))
				t := time.NewTicker(period)
				defer t.Stop()
				for time.Now().Before(end) {
					sdp := strconv.FormatInt(time.Now().UnixNano(), 10) + " v=0\r\n" + pad
					if err := p.a.SendSignal(ctx, p.b.ID(), "bench", proto.KindOffer, sdp); err == nil {
						sent.Add(1)
					}
					<-t.C
				}
			}(i, p)
		}
		wg.Wait()
		// Wait for stragglers (up to a second).
		for w := 0; w < 100 && received.Load() < sent.Load(); w++ {
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		l := append([]time.Duration(nil), lat...)
		mu.Unlock()
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		r := pairsReport{Rate: rate, Sent: int(sent.Load()), Received: len(l), Seconds: dur.Seconds()}
		if len(l) > 0 {
			r.P50MS = float64(l[len(l)/2].Microseconds()) / 1000
			r.P99MS = float64(l[len(l)*99/100].Microseconds()) / 1000
			r.MaxMS = float64(l[len(l)-1].Microseconds()) / 1000
		}
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, p := range ps {
		p.a.Close()
		p.b.Close()
	}
	return 0
}

// pairBoxes pairs a and b as their owners would: a code a asks for, b
// enters; both show the same short authentication string and both owners
// confirm it.
func pairBoxes(ctx context.Context, a, b *box.Client) error {
	code, _, err := a.RequestPairCode(ctx)
	if err != nil {
		return err
	}
	pb, err := b.JoinPairCode(ctx, code)
	if err != nil {
		return err
	}
	pa, err := a.WaitPairStage(ctx, box.PairCompare)
	if err != nil {
		return err
	}
	if pa.SAS != pb.SAS {
		return fmt.Errorf("the boxes show %q and %q", pa.SAS, pb.SAS)
	}
	for _, c := range []*box.Client{a, b} {
		if err := c.ConfirmPairing(ctx); err != nil {
			return err
		}
	}
	for _, c := range []*box.Client{a, b} {
		if _, err := c.WaitPaired(ctx); err != nil {
			return err
		}
	}
	return nil
}
