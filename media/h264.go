package media

import (
	"fmt"
	"strings"

	"github.com/callbox/callbox/capture"
	"github.com/callbox/callbox/capture/h264enc"
	"github.com/callbox/callbox/drivers/camera"
	"github.com/callbox/callbox/drivers/encoder"
)

// Choosing the video codec (config [video], flags --codec --bitrate --gop
// --profile): H.264 from the first of
//
//  1. the camera's own H.264 (a UVC camera that offers it),
//  2. the board's V4L2 memory-to-memory encoder (a Pi's bcm2835-codec),
//  3. the software encoder (OpenH264, capture/h264enc),
//
// or JPEG when none is there (codec auto) or asked for (codec jpeg).

// H264Config is the [video] section.
type H264Config struct {
	Codec   string // "auto" (""), "h264" or "jpeg"
	Bitrate int    // bit/s (0: h264enc.DefaultBitrate)
	GOP     int    // frames (0: h264enc.DefaultGOP)
	Profile string // "baseline" (""), "main" or "high"
}

// VideoChoice is the codec a box sends, where it comes from and why.
type VideoChoice struct {
	Codec   capture.Codec `json:"-"`
	Name    string        `json:"codec"`   // "h264" or "jpeg"
	Path    string        `json:"path"`    // "camera", "hardware", "software" or "jpeg"
	Encoder string        `json:"encoder"` // the device or library, "" for JPEG
	Reason  string        `json:"reason"`
	// Alongside is the codec sent beside Name ("jpeg": the camera's JPEG
	// for the WebSocket page while the encoder's H.264 goes to WebRTC and
	// RTSP), "" when there is one.
	Alongside string `json:"alongside,omitempty"`
	// Transports is which codec each way out carries (websocket, tcp,
	// snapshot, webrtc, rtsp; "" none), set by the appliance.
	Transports map[string]string `json:"transports,omitempty"`
}

func (c VideoChoice) String() string {
	if c.Encoder == "" {
		return fmt.Sprintf("%s (%s)", c.Name, c.Reason)
	}
	return fmt.Sprintf("%s from %s: %s (%s)", c.Name, c.Path, c.Encoder, c.Reason)
}

// Probes are the checks ChooseVideo makes; tests replace them.
type Probes struct {
	// CameraH264 reports whether the camera spec names (or "auto" finds)
	// a camera that offers H.264, and which.
	CameraH264 func(spec string) (path string, ok bool)
	// Hardware finds an M2M H.264 encoder.
	Hardware func() (encoder.Found, error)
	// Software reports whether this build has the software encoder.
	Software func() bool
}

// DefaultProbes look at the real devices.
var DefaultProbes = Probes{
	CameraH264: func(spec string) (string, bool) {
		if spec == "synthetic" {
			return "", false
		}
		for _, d := range camera.List() {
			if spec != "" && spec != "auto" && d.Path != spec {
				continue
			}
			for _, f := range d.Formats {
				if f == "H264" {
					return d.Path, true
				}
			}
		}
		return "", false
	},
	Hardware: func() (encoder.Found, error) { f, _, err := encoder.Probe(encoder.FourccH264); return f, err },
	Software: h264enc.SoftwareAvailable,
}

// h264Settings checks the H.264 keys.
func (hc H264Config) settings() (h264enc.Profile, error) {
	switch strings.ToLower(hc.Codec) {
	case "", "auto", "h264", "jpeg":
	default:
		return "", fmt.Errorf("codec %q: want auto, h264 or jpeg", hc.Codec)
	}
	if hc.Profile == "" {
		return h264enc.ProfileConstrainedBaseline, nil
	}
	return h264enc.ParseProfile(hc.Profile)
}

// ChooseVideo decides what the camera named by cameraSpec will be sent as.
// With codec h264 and no way to make it, it fails.
func ChooseVideo(cameraSpec string, hc H264Config, p Probes) (VideoChoice, error) {
	prof, err := hc.settings()
	if err != nil {
		return VideoChoice{}, err
	}
	jpeg := func(why string) VideoChoice {
		return VideoChoice{Codec: capture.CodecJPEG, Name: "jpeg", Path: "jpeg", Reason: why}
	}
	codec := strings.ToLower(hc.Codec)
	if codec == "jpeg" {
		return jpeg("codec jpeg configured"), nil
	}
	h264 := func(path, enc, why string) VideoChoice {
		return VideoChoice{Codec: capture.CodecH264, Name: "h264", Path: path, Encoder: enc, Reason: why}
	}
	var tried []string
	if dev, ok := p.CameraH264(cameraSpec); ok {
		return h264("camera", "V4L2 camera "+dev+" H.264", "the camera encodes H.264 itself: no encoding on the box"), nil
	}
	tried = append(tried, "the camera offers no H.264")
	if f, err := p.Hardware(); err == nil {
		// Every profile is passed to the device, which refuses at open
		// what it cannot do.
		return h264("hardware", "V4L2 M2M encoder "+f.String(), strings.Join(tried, "; ")+"; the board has a hardware encoder"), nil
	} else {
		tried = append(tried, "no hardware encoder ("+err.Error()+")")
	}
	if p.Software() {
		if prof != h264enc.ProfileConstrainedBaseline {
			tried = append(tried, "the software encoder makes constrained baseline only, not "+string(prof))
		} else {
			return h264("software", h264enc.SoftwareName, strings.Join(tried, "; ")+"; software encoder"), nil
		}
	} else {
		tried = append(tried, "no software encoder in this build")
	}
	why := strings.Join(tried, "; ")
	if codec == "h264" {
		return VideoChoice{}, fmt.Errorf("codec h264: no way to make H.264 here: %s", why)
	}
	return jpeg("no H.264: " + why), nil
}

// ApplyVideo sets up cfg to send what choice says: the camera's H.264
// mode, or an encoder stage (the synthetic camera then gives raw
// pictures; a real camera gives JPEG, which the stage decodes).
func ApplyVideo(cfg *Config, choice VideoChoice, hc H264Config) error {
	prof, err := hc.settings()
	if err != nil {
		return err
	}
	switch choice.Path {
	case "jpeg", "":
		return nil
	case "camera":
		cfg.Video.Format = capture.CodecH264
		return nil
	}
	cfg.Video.Format = capture.CodecI420
	return applyEncoder(cfg, choice, prof, hc)
}

// ApplyVideoAlongside sets up cfg to send the camera's JPEG as it is AND
// H.264 from choice's encoder (hardware or software) fed with copies of
// the same frames (Config.EncodeAlongside): the WebSocket page and the
// JPEG outputs keep their codec while WebRTC and RTSP get H.264. A choice
// of the camera's own H.264 cannot run beside its JPEG (one V4L2 stream
// has one format): ask ChooseVideo without the camera probe first.
func ApplyVideoAlongside(cfg *Config, choice VideoChoice, hc H264Config) error {
	prof, err := hc.settings()
	if err != nil {
		return err
	}
	switch choice.Path {
	case "hardware", "software":
	default:
		return fmt.Errorf("video alongside JPEG: needs an encoder, not the %q path", choice.Path)
	}
	cfg.Video.Format = capture.CodecJPEG
	cfg.EncodeAlongside = true
	return applyEncoder(cfg, choice, prof, hc)
}

// applyEncoder sets cfg.Encode to choice's encoder stage.
func applyEncoder(cfg *Config, choice VideoChoice, prof h264enc.Profile, hc H264Config) error {
	vc := cfg.Video
	ec := h264enc.Config{Width: vc.Width, Height: vc.Height, FPS: vc.FPS, Bitrate: hc.Bitrate, GOP: hc.GOP, Profile: prof}
	if err := ec.Fill(); err != nil {
		return err
	}
	open := h264enc.NewSoftware
	if choice.Path == "hardware" {
		open = func(c h264enc.Config) (h264enc.Engine, error) {
			e, err := encoder.Open(encoder.Config{Width: c.Width, Height: c.Height, FPS: c.FPS,
				Bitrate: c.Bitrate, GOP: c.GOP, Profile: c.Profile})
			if err != nil {
				return nil, err
			}
			return e, nil
		}
	}
	// The engine opens at the size of the camera's first picture, which
	// may differ from the one asked for.
	cfg.Encode = func(cam capture.VideoSource) (VideoEncoder, error) {
		return h264enc.NewStageOpen(cam, open, ec)
	}
	return nil
}
