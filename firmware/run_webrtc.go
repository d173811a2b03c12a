package firmware

import (
	"log/slog"
	"net/http"

	"github.com/callbox/callbox/board/pairing"
	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// startWHEP mounts the relay's WebRTC transport at /whep on the page's
// HTTP server (docs/webrtc.md): phones' browsers play the box's H.264 over
// WebRTC under the relay's policy, the pairing token as the bearer token.
func startWHEP(mux *http.ServeMux, r *relay.Relay, authorize func(string) error, owner func(string) string, log *slog.Logger) (*rwebrtc.Server, error) {
	s, err := rwebrtc.New(r, rwebrtc.Config{Authorize: authorize, Owner: owner, Log: log.With("transport", "webrtc")})
	if err != nil {
		return nil, err
	}
	mux.Handle("/whep", s)
	mux.Handle("/whep/", s)
	return s, nil
}

// callWHEPPath is where the call's relay is served over WebRTC.
const callWHEPPath = "/whep/call"

// startCallWHEP mounts the call's relay (the other box's media during a
// call) at /whep/call: the same WHEP server, policy and pairing gate as
// /whep, on the relay the call publishes into. The other box's H.264
// access units go out as they arrived, repacketized per phone (SSRC,
// payload type, sequence numbers), never decoded.
func startCallWHEP(mux *http.ServeMux, r *relay.Relay, authorize func(string) error, log *slog.Logger) (*rwebrtc.Server, error) {
	s, err := rwebrtc.New(r, rwebrtc.Config{Authorize: authorize, Path: callWHEPPath, OpusFirst: true, Owner: pairing.Hash, Log: log.With("transport", "webrtc", "relay", "call")})
	if err != nil {
		return nil, err
	}
	mux.Handle(callWHEPPath, s)
	mux.Handle(callWHEPPath+"/", s)
	return s, nil
}
