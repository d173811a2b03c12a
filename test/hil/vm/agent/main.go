// Command agent is the HIL VM's tiny HTTP server: the host reaches it
// through qemu's hostfwd to see that the guest is up (/ping), whether the
// test script has finished (/status), to fetch results (/results/...) and
// to end the VM (/quit). It runs inside the initramfs as /bin/hil-agent.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	dir := flag.String("dir", "/results", "results directory")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "pong") })
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		// /results/DONE holds the script's exit status once it has ended.
		b, err := os.ReadFile(filepath.Join(*dir, "DONE"))
		if err != nil {
			fmt.Fprintln(w, "running")
			return
		}
		fmt.Fprintf(w, "done %s", b)
	})
	mux.HandleFunc("/quit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "bye")
		// Exit after the reply is out; /init powers the VM off when we do.
		go func() { time.Sleep(100 * time.Millisecond); os.Exit(0) }()
	})
	mux.Handle("/results/", http.StripPrefix("/results/", http.FileServer(http.Dir(*dir))))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "hil-agent:", err)
		os.Exit(1)
	}
}
