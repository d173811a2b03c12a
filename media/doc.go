// Package media is the box's media pipeline, written once for the
// appliance (`callbox run`), `callbox send` and calls:
//
//	camera ─► tap ─► [encoder] ─► video packetizer ─┐
//	                                               ├─► mute ─► sink (relay, UDP, ...)
//	microphone ─► tap ─► audio packetizer ─────────┘
//
// A Track is one kind's loop (source -> packetizer -> sink) and is generic
// over the unit it carries (capture.VideoFrame or capture.AudioChunk): the
// video and the audio pipeline are the same code. A source that fails (a
// camera unplugged: capture.ErrDeviceGone) is closed and opened again under
// one retry policy (Retry) for both kinds; a device missing at start on a
// real board is the same case, and is reported through Config.OnDevice (the
// board shows it as a fault) until it appears.
//
// The Tap hands copies of the sources' frames and chunks to subscribers (a
// call) without ever making the sources wait. Mute drops the microphone's
// output, for the sink and the tap alike.
//
// An H.264 encoder plugs in as a VideoEncoder (Config.Encode): a
// capture.VideoSource that reads the camera and yields encoded frames, and
// that can be asked for a keyframe (Pipeline.RequestKeyframe, which the
// appliance wires to the relay's keyframe requests).
package media
