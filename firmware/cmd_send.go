package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callbox/callbox/board/config"
	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/capture/pcmu"
	"github.com/callbox/callbox/capture/rtpext"
	"github.com/callbox/callbox/capture/rtph264"
	"github.com/callbox/callbox/capture/rtpjpeg"
	"github.com/callbox/callbox/media"
)

// cmdSend is `callbox send`: the box's media as plain RTP over UDP to one
// receiver, with an SDP file that any standard player opens. It is the
// simplest proof that the media is standard, and a handy test signal.
func cmdSend(args []string) int {
	fs := newFlagSet("send", usageText{
		synopsis: []string{"--to HOST:PORT --sdp FILE [--duration D] [flags]"},
		about: "Sends RTP video (H.264, RFC 6184, or JPEG, RFC 2435: --codec) to HOST:PORT\n" +
			"and PCMU audio to HOST:PORT+2 over UDP,\n" +
			"and writes FILE, an SDP that ffplay, VLC and GStreamer open as is. Start the\n" +
			"receiver first (e.g. with --sdp-only), then send.",
		examples: []string{
			"callbox send --to 127.0.0.1:5004 --sdp /tmp/box.sdp --sdp-only && ffplay -protocol_whitelist file,udp,rtp /tmp/box.sdp",
			"callbox send --to 127.0.0.1:5004 --sdp /tmp/box.sdp --duration 30s --size 640x480 --fps 15",
			"callbox send --codec h264 --bitrate 1500 --gop 30 --to 127.0.0.1:5004 --sdp /tmp/box.sdp",
		},
	})
	// The media keys of the configuration (board/config), as flags.
	flags := config.RegisterFlags(fs, "camera.", "video.", "audio.", "relay.packet_size")
	to := fs.String("to", "", "receiver HOST:PORT (PORT even: video to PORT, audio to PORT+2)")
	sdpPath := fs.String("sdp", "", "write the receiver's SDP file here")
	sdpOnly := fs.Bool("sdp-only", false, "write the SDP file and exit, so a receiver can start before the sender")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "callbox send: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	mc := config.Default()
	if err := flags.Apply(mc); err != nil {
		fmt.Fprintf(os.Stderr, "callbox send: %v\n", err)
		return 2
	}
	cfg := sendConfig{opts: mediaConfig(mc), h264: h264Config(mc), to: *to, sdpPath: *sdpPath, sdpOnly: *sdpOnly, duration: *duration}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := runSend(ctx, cfg, os.Stdout, log); err != nil {
		fmt.Fprintf(os.Stderr, "callbox send: %v\n", err)
		return 1
	}
	return 0
}

type sendConfig struct {
	opts     media.Config
	h264     media.H264Config
	probes   *media.Probes // nil: media.DefaultProbes
	to       string
	sdpPath  string
	sdpOnly  bool
	duration time.Duration
}

// sendTargets resolves --to into the video and audio destinations.
func sendTargets(to string) (video, audio *net.UDPAddr, err error) {
	if to == "" {
		return nil, nil, errors.New("--to HOST:PORT is required")
	}
	v, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return nil, nil, fmt.Errorf("--to %q: %w", to, err)
	}
	if v.Port == 0 || v.Port%2 != 0 || v.Port > 65532 {
		return nil, nil, fmt.Errorf("--to %q: the port must be even and at most 65532 (RTP on PORT, RTCP on PORT+1, audio on PORT+2)", to)
	}
	if v.IP == nil {
		return nil, nil, fmt.Errorf("--to %q: a host is required", to)
	}
	a := *v
	a.Port = v.Port + 2
	return v, &a, nil
}

func runSend(ctx context.Context, cfg sendConfig, out io.Writer, log *slog.Logger) error {
	if cfg.sdpOnly && cfg.sdpPath == "" {
		return errors.New("--sdp-only needs --sdp FILE")
	}
	vaddr, aaddr, err := sendTargets(cfg.to)
	if err != nil {
		return err
	}
	probes := media.DefaultProbes
	if cfg.probes != nil {
		probes = *cfg.probes
	}
	choice, err := media.ChooseVideo(cfg.opts.Camera, cfg.h264, probes)
	if err != nil {
		return err
	}
	log.Info("video", "codec", choice.Name, "path", choice.Path, "encoder", choice.Encoder, "reason", choice.Reason)
	if err := media.ApplyVideo(&cfg.opts, choice, cfg.h264); err != nil {
		return err
	}
	if cfg.sdpPath != "" {
		ip := vaddr.AddrPort().Addr()
		text, err := sendSDP{
			Addr: ip, VideoPort: vaddr.Port, AudioPort: aaddr.Port, FPS: cfg.opts.Video.FPS, VideoCodec: choice.Codec,
			ProfileLevelID: profileLevelID(choice, cfg.h264, cfg.opts.Video),
			SessionID:      uint64(time.Now().Unix()), Version: Version,
		}.marshal()
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.sdpPath, text, 0o644); err != nil {
			return fmt.Errorf("write SDP: %w", err)
		}
		if cfg.sdpOnly {
			return nil
		}
	}

	vssrc, assrc := rtpext.Random32(), rtpext.Random32()
	vbase, abase := rtpext.Random32(), rtpext.Random32()
	var vp interface {
		capture.VideoPacketizer
		SetStart(seq uint16, ts uint32)
	}
	if choice.Codec == capture.CodecH264 {
		vp, err = rtph264.NewPacketizer(cfg.opts.PacketSize, vssrc, capture.PayloadTypeH264)
	} else {
		vp, err = rtpjpeg.NewPacketizer(cfg.opts.PacketSize, vssrc, capture.PayloadTypeJPEG)
	}
	if err != nil {
		return fmt.Errorf("video packetizer: %w", err)
	}
	ap, err := pcmu.NewPacketizer(cfg.opts.PacketSize, assrc, capture.PayloadTypePCMU)
	if err != nil {
		return fmt.Errorf("audio packetizer: %w", err)
	}
	// The RTP timestamp bases are chosen here so that the sender reports
	// can state the same mapping the packetizers use.
	vp.SetStart(uint16(rtpext.Random32()), vbase)
	ap.SetStart(uint16(rtpext.Random32()), abase)
	dial := func(what string, addr *net.UDPAddr) (*net.UDPConn, error) {
		c, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			return nil, fmt.Errorf("%s socket: %w", what, err)
		}
		return c, nil
	}
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var vconn, aconn, vrtcp, artcp *net.UDPConn
	for _, c := range []struct {
		what string
		addr *net.UDPAddr
		conn **net.UDPConn
	}{
		{"video", vaddr, &vconn}, {"audio", aaddr, &aconn},
		{"video RTCP", &net.UDPAddr{IP: vaddr.IP, Port: vaddr.Port + 1, Zone: vaddr.Zone}, &vrtcp},
		{"audio RTCP", &net.UDPAddr{IP: aaddr.IP, Port: aaddr.Port + 1, Zone: aaddr.Zone}, &artcp},
	} {
		conn, err := dial(c.what, c.addr)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		*c.conn = conn
	}
	vsr := newSRStream(vrtcp, vssrc, capture.VideoClockRate, vbase)
	asr := newSRStream(artcp, assrc, capture.PCMUClockRate, abase)
	// A 1280x720 frame is a burst of ~50 datagrams; room for a few frames
	// keeps the burst from blocking on the socket.
	_ = vconn.SetWriteBuffer(1 << 20)

	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	var video, audio media.Stats
	sendVideo := observed(udpPublisher(vconn, &video), vsr)
	sendAudio := observed(udpPublisher(aconn, &audio), asr)
	mc := cfg.opts
	mc.VideoPacketizer, mc.AudioPacketizer = vp, ap
	mc.VideoStats, mc.AudioStats = &video, &audio
	mc.SyntheticFallback = true // a tool for development machines and tests
	mc.Log = log
	mc.Publish = func(b capture.Burst) {
		if b.Kind == capture.KindVideo {
			sendVideo(b)
		} else {
			sendAudio(b)
		}
	}
	start := time.Now()
	pipe, err := media.Start(ctx, mc)
	if err != nil {
		return err
	}
	camDesc, micDesc := pipe.Describe()
	log.Info("sending", "video", vaddr.String(), "audio", aaddr.String(), "camera", camDesc, "mic", micDesc,
		"packet_size", cfg.opts.PacketSize, "duration", cfg.duration)
	sendReports(ctx, senderCNAME(vssrc), vsr, asr)
	pipe.Stop()
	elapsed := time.Since(start)

	v, a := video.Snapshot(), audio.Snapshot()
	fmt.Fprintf(out, "callbox send: video frames=%d packets=%d bytes=%d dropped_frames=%d errors=%d\n",
		v.Units, v.Packets, v.Bytes, v.Gaps, v.Errors)
	fmt.Fprintf(out, "callbox send: audio chunks=%d packets=%d bytes=%d lost_chunks=%d errors=%d\n",
		a.Units, a.Packets, a.Bytes, a.Gaps, a.Errors)
	fmt.Fprintf(out, "callbox send: elapsed=%.3fs video_kbps=%.0f\n",
		elapsed.Seconds(), float64(v.Bytes)*8/elapsed.Seconds()/1000)
	return nil
}

// udpPublisher returns a publish function that sends each packet of a
// burst as one datagram on conn.
func udpPublisher(conn *net.UDPConn, st *media.Stats) func(capture.Burst) {
	return func(b capture.Burst) {
		for _, p := range b.Packets {
			// A refused or unreachable port shows up as a write error on a
			// later datagram; count it and keep sending, so a receiver can
			// come and go.
			if _, err := conn.Write(p); err != nil {
				st.Errors.Add(1)
			}
		}
	}
}

// observed returns publish followed by the sender report's accounting.
func observed(publish func(capture.Burst), sr *srStream) func(capture.Burst) {
	return func(b capture.Burst) {
		publish(b)
		sr.observe(b)
	}
}

// profileLevelID is the SDP's profile-level-id for what the encoder makes:
// the configured profile at level 3.1 (up to 1280x720 at 30 fps) or 4.0
// (up to 1080p30); "" for a camera's own H.264.
func profileLevelID(c media.VideoChoice, hc media.H264Config, vc media.VideoConfig) string {
	if c.Codec != capture.CodecH264 || c.Path == "camera" {
		return ""
	}
	prof, err := h264enc.ParseProfile(hc.Profile)
	if hc.Profile == "" || err != nil {
		prof = h264enc.ProfileConstrainedBaseline
	}
	idc, cons := prof.ProfileIDC()
	level := 0x1f
	if vc.Width*vc.Height*vc.FPS > 1280*720*30 {
		level = 0x28
	}
	return fmt.Sprintf("%02x%02x%02x", idc, cons, level)
}
