package firmware

import "testing"

func TestHubPageBase(t *testing.T) {
	for in, want := range map[string]string{
		"wss://hub.example.org/v1/ws":    "https://hub.example.org",
		"wss://198.51.100.10:8443/v1/ws": "https://198.51.100.10:8443",
		"ws://127.0.0.1:8443/v1/ws":      "http://127.0.0.1:8443",
		"https://hub.example.org/v1/ws":  "",
		"not a url":                      "",
	} {
		got, err := hubPageBase(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("hubPageBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
