package firmware

import (
	"net"
	"net/http"
)

// localOrPaired serves h to the box itself (loopback: a script over ssh,
// the box's own monitoring) and to paired phones (their token as for
// /api/state); anyone else gets 403. /metrics labels each viewer with its
// address and port, which is not for strangers (docs/security.md). In open
// mode, where every token passes, only loopback is served.
func localOrPaired(h http.Handler, auth authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isLoopback(r.RemoteAddr) {
			h.ServeHTTP(w, r)
			return
		}
		if auth != nil && auth.Authorize("") != nil && auth.Authorize(requestToken(r)) == nil {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "forbidden: from the box itself, or with a paired phone's token", http.StatusForbidden)
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
