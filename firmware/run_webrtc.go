package firmware

import (
	"log/slog"
	"net/http"

	"github.com/callbox/callbox/relay"
	rwebrtc "github.com/callbox/callbox/relay/webrtc"
)

// startWHEP mounts the relay's WebRTC transport at /whep on the page's
// HTTP server (docs/webrtc.md): phones' browsers play the box's H.264 over
// WebRTC under the relay's policy, the pairing token as the bearer token.
func startWHEP(mux *http.ServeMux, r *relay.Relay, authorize func(string) error, log *slog.Logger) (*rwebrtc.Server, error) {
	s, err := rwebrtc.New(r, rwebrtc.Config{Authorize: authorize, Log: log.With("transport", "webrtc")})
	if err != nil {
		return nil, err
	}
	mux.Handle("/whep", s)
	mux.Handle("/whep/", s)
	return s, nil
}
