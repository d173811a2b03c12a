// Command rtspbench is the box's RTSP server and relay as a stand-alone
// process for `make bench-rtsp`: the same outputs/rtsp.Server and
// relay.Relay as `callbox run`, with publishing allowed (one RTSP client
// may ANNOUNCE/RECORD rtsp://ADDR/live into the relay), so that the same
// load harness (../shared/peerbench) publishes to it and to mediamtx and
// measures both the same way. No camera, no pairing (--open).
//
//	rtspbench -listen 127.0.0.1:8554
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/callbox/callbox/outputs/rtsp"
	"github.com/callbox/callbox/relay"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8554", "RTSP address")
	udp := flag.Int("udp-port", 0, "RTP port for UDP readers (even); 0: TCP only")
	verbose := flag.Bool("v", false, "log every reader")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here until stopped")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	r := relay.New(relay.Config{}, log)
	pub, err := r.NewPublisher("rtsp publisher")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtspbench:", err)
		os.Exit(1)
	}
	s, err := rtsp.New(rtsp.Config{Addr: *listen, UDPPort: *udp, Relay: r, Publisher: pub, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtspbench:", err)
		os.Exit(1)
	}
	fmt.Printf("rtspbench: rtsp://%s/%s (publish and read)\n", s.Addr(), rtsp.Path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Close()
	r.Close()
}
