package firmware

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/pion/logging"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// webFS holds the phone page: plain ES modules, no build step, so what is
// in firmware/web is exactly what phones run, and the box needs no internet.
//
//go:embed web
var webFS embed.FS

// pagePart serves the phone page at / and makes the box findable as
// <name>.local on the LAN (mDNS, RFC 6762), so nobody has to type an IP.
type pagePart struct {
	// Set by wire.
	boxName  string // the configured name: the mDNS name's default
	httpAddr string // where the page is served
	log      *slog.Logger
	mux      *http.ServeMux

	mdnsName string // --mdns-name; then the name announced
	mdns     *mdns.Conn
	// mdnsErr says why the name is not announced, for announce().
	mdnsErr error
	// localName is the box's .local name from its configured name, which
	// the HTTP server answers to even with mDNS off.
	localName string
}

func (p *pagePart) start(ctx context.Context) error {
	h, err := pageHandler()
	if err != nil {
		return err
	}
	// "/" without a method: a method on this catch-all would conflict with
	// method-less patterns of other parts (ServeMux panics on such pairs).
	p.mux.Handle("/", h)
	p.localName = "callbox.local"
	if p.boxName != "" {
		p.localName = hostLabel(p.boxName) + ".local"
	}
	if p.mdnsName == "auto" {
		p.mdnsName = "callbox"
		if p.boxName != "" {
			p.mdnsName = hostLabel(p.boxName)
		}
	}
	// A page served on loopback only is for this machine: announcing a
	// name on the LAN would lead phones nowhere.
	if host, _, err := net.SplitHostPort(p.httpAddr); err == nil {
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			p.mdnsName = ""
		}
	}
	if p.mdnsName != "" {
		name, err := mdnsHostName(p.mdnsName)
		if err != nil {
			return err
		}
		p.mdnsName = name
		// A box without multicast (no LAN yet, another responder holding
		// the port) still works by IP: say so and carry on.
		p.mdns, p.mdnsErr = startMDNS(name)
		if p.mdnsErr != nil {
			p.log.Warn("mDNS off: the page is reachable by IP only", "name", name, "err", p.mdnsErr)
		}
	}
	return nil
}

// hostNames are the names the box answers to besides IP literals and
// localhost (webguard): its .local name, also when this process does not
// announce it (another responder may, e.g. avahi).
func (p *pagePart) hostNames() []string {
	if p.mdnsName != "" {
		return []string{p.mdnsName}
	}
	return []string{p.localName}
}

func (p *pagePart) stop() {
	if p.mdns != nil {
		p.mdns.Close()
		p.mdns = nil
	}
}

// pageHandler serves the embedded page. Caching is turned off: a phone that
// kept yesterday's page after a firmware update would speak an old protocol.
func pageHandler() (http.Handler, error) {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, fmt.Errorf("page assets: %w", err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		// Module scripts and worklets need a JavaScript MIME type; the
		// system's mime table may not have .js on a minimal image.
		if strings.HasSuffix(r.URL.Path, ".js") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	}), nil
}

// errBadName is returned for an mDNS name that is not one DNS label.
var errBadName = errors.New("bad mDNS name")

// mdnsHostName turns the configured name ("callbox", "Kitchen", or
// "callbox.local") into the fully qualified name mDNS answers for.
func mdnsHostName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(name, "."), ".local"))
	if n == "" || len(n) > 63 {
		return "", fmt.Errorf("%w %q: want 1 to 63 characters", errBadName, name)
	}
	for i, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(n)-1
		if !ok {
			return "", fmt.Errorf("%w %q: use letters, digits and inner hyphens only", errBadName, name)
		}
	}
	return n + ".local", nil
}

// hostLabel makes a DNS label of a box's display name ("Kitchen box" ->
// "kitchen-box"): letters and digits kept, runs of anything else one hyphen.
func hostLabel(name string) string {
	var b strings.Builder
	hyphen := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(c)
			if b.Len() >= 63 {
				break
			}
			continue
		}
		hyphen = true
	}
	if b.Len() == 0 {
		return "callbox"
	}
	return b.String()
}

// startMDNS answers A/AAAA questions for name on every multicast interface
// (pion/mdns picks the address of the interface each question came in on).
// The server only answers; it sends nothing unasked. Tests add options
// (loopback).
func startMDNS(name string, opts ...mdns.ServerOption) (*mdns.Conn, error) {
	addr4, err := net.ResolveUDPAddr("udp4", mdns.DefaultAddressIPv4)
	if err != nil {
		return nil, err
	}
	l4, err := net.ListenUDP("udp4", addr4)
	if err != nil {
		return nil, fmt.Errorf("mdns listen: %w", err)
	}
	var p6 *ipv6.PacketConn
	if addr6, err := net.ResolveUDPAddr("udp6", mdns.DefaultAddressIPv6); err == nil {
		// IPv6 is optional: many small boards run without it.
		if l6, err := net.ListenUDP("udp6", addr6); err == nil {
			p6 = ipv6.NewPacketConn(l6)
		}
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	c, err := mdns.NewServer(ipv4.NewPacketConn(l4), p6, append([]mdns.ServerOption{
		mdns.WithLocalNames(name),
		mdns.WithRecordTypes(dnsmessage.TypeA, dnsmessage.TypeAAAA),
		mdns.WithLoggerFactory(lf),
	}, opts...)...)
	if err != nil {
		l4.Close()
		if p6 != nil {
			p6.Close()
		}
		return nil, fmt.Errorf("mdns: %w", err)
	}
	return c, nil
}

// pageURLs lists where people find the page: the mDNS name first (stable
// across DHCP leases), then every non-loopback IP the server listens on, or
// just the listen address when it is bound to one IP.
func (p *pagePart) pageURLs(addr *net.TCPAddr) []string {
	port := addr.Port
	var urls []string
	if p.mdns != nil && !addr.IP.IsLoopback() {
		urls = append(urls, fmt.Sprintf("http://%s/", hostPort(strings.TrimSuffix(p.mdnsName, "."), port)))
	}
	if !addr.IP.IsUnspecified() {
		return append(urls, fmt.Sprintf("http://%s/", hostPort(addr.IP.String(), port)))
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			urls = append(urls, fmt.Sprintf("http://%s/", hostPort(ipn.IP.String(), port)))
		}
	}
	if len(urls) == 0 || (p.mdns != nil && len(urls) == 1) {
		urls = append(urls, fmt.Sprintf("http://%s/", hostPort("localhost", port)))
	}
	return urls
}

func hostPort(host string, port int) string {
	if port == 80 {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, fmt.Sprint(port))
}
