package rtsp

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/relay/viewer"
)

// testReader is a plain RTSP/TCP reader (DESCRIBE, SETUP both tracks
// interleaved, PLAY) that checks frames are whole and measures their
// latency from abs-capture-time with relay/viewer's Tracker. It can read
// slowly (a token bucket, like a weak radio link) with a small receive
// buffer, or not at all after PLAY (stalled).
type testReader struct {
	c       net.Conn
	br      *bufio.Reader
	cseq    int
	session string

	mu     sync.Mutex
	video  *viewer.Tracker
	audio  *viewer.Tracker
	err    error
	done   chan struct{}
	played time.Time
}

type readerOptions struct {
	user, token string
	rcvbuf      int
	rate        float64 // bytes/s; 0: as fast as possible
	stalled     bool
}

func dialReader(t testing.TB, url string, o readerOptions) *testReader {
	t.Helper()
	hostport := strings.TrimPrefix(url, "rtsp://")
	hostport = hostport[:strings.IndexByte(hostport, '/')]
	d := net.Dialer{Timeout: 5 * time.Second}
	if o.rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	r := &testReader{c: c, br: bufio.NewReaderSize(c, 64<<10), done: make(chan struct{}),
		video: viewer.NewTracker(capture.KindVideo, 0), audio: viewer.NewTracker(capture.KindAudio, 0)}
	t.Cleanup(func() { r.c.Close(); <-r.done })
	var hdr []string
	if o.token != "" {
		hdr = append(hdr, "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(o.user+":"+o.token)))
	}
	if _, err := r.do("DESCRIBE", url, append(hdr, "Accept: application/sdp")); err != nil {
		t.Fatal(err)
	}
	for i, track := range []string{"trackID=0", "trackID=1"} {
		h := append(hdr, fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i, 2*i+1))
		if _, err := r.do("SETUP", url+"/"+track, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.do("PLAY", url, append(hdr, "Range: npt=0.000-")); err != nil {
		t.Fatal(err)
	}
	r.played = time.Now()
	var src io.Reader = r.br
	if o.rate > 0 {
		// Throttle everything after PLAY, bytes already buffered included.
		src = &throttled{r: r.br, rate: o.rate}
	}
	if o.stalled {
		close(r.done) // reads nothing after PLAY
		return r
	}
	go r.loop(bufio.NewReaderSize(src, 2048))
	return r
}

func (r *testReader) setErr(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

func (r *testReader) do(method, url string, hdr []string) (textproto.MIMEHeader, error) {
	r.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, r.cseq)
	if r.session != "" {
		fmt.Fprintf(&b, "Session: %s\r\n", r.session)
	}
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	tp := textproto.NewReader(r.br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, err
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		if _, err := io.CopyN(io.Discard, r.br, int64(n)); err != nil {
			return nil, err
		}
	}
	if !strings.Contains(line, " 200 ") {
		return h, fmt.Errorf("%s: %s", method, line)
	}
	if s := h.Get("Session"); s != "" {
		r.session = strings.TrimSpace(strings.SplitN(s, ";", 2)[0])
	}
	return h, nil
}

func (r *testReader) loop(br *bufio.Reader) {
	defer close(r.done)
	buf := make([]byte, 65536)
	for {
		b, err := br.ReadByte()
		if err != nil {
			r.setErr(err)
			return
		}
		if b != '$' {
			r.setErr(fmt.Errorf("not an interleaved frame: %q", b))
			return
		}
		var h [3]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			r.setErr(err)
			return
		}
		n := int(binary.BigEndian.Uint16(h[1:]))
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			r.setErr(err)
			return
		}
		now := time.Now()
		r.mu.Lock()
		switch h[0] {
		case 0:
			r.video.Add(buf[:n], now, 0)
		case 2:
			r.audio.Add(buf[:n], now, 0)
		}
		r.mu.Unlock()
	}
}

// reset starts a measuring window.
func (r *testReader) reset() {
	r.mu.Lock()
	r.video.Reset()
	r.audio.Reset()
	r.mu.Unlock()
}

func (r *testReader) summary() (video viewer.Summary, latencies []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.video.Summary(), append([]time.Duration(nil), r.video.Latencies()...)
}

// throttled reads at rate bytes per second, in chunks of at most 1500.
type throttled struct {
	r     io.Reader
	rate  float64
	start time.Time
	total float64
}

func (t *throttled) Read(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	if len(p) > 1500 {
		p = p[:1500]
	}
	time.Sleep(time.Until(t.start.Add(time.Duration(t.total / t.rate * float64(time.Second)))))
	n, err := t.r.Read(p)
	t.total += float64(n)
	return n, err
}
