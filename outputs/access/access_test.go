package access

import (
	"net/http/httptest"
	"testing"
)

func TestGateRemembersAndForgets(t *testing.T) {
	valid := map[string]bool{"a": true, "b": true}
	g := New(func(tok string) error {
		if valid[tok] {
			return nil
		}
		return ErrUnpaired
	})
	if g.Open() || g.Check("") == nil || g.Check("x") == nil {
		t.Fatal("a paired gate let a wrong token in")
	}
	if len(g.Known()) != 0 {
		t.Fatal("known tokens before any check")
	}
	for _, tok := range []string{"a", "b", "a"} {
		if err := g.Check(tok); err != nil {
			t.Fatal(err)
		}
	}
	if k := g.Known(); len(k) != 2 || k[0] != "a" || k[1] != "b" {
		t.Fatalf("known %v, want [a b] (most recent first)", k)
	}
	valid = map[string]bool{} // a factory reset
	if k := g.Known(); len(k) != 0 {
		t.Fatalf("revoked tokens still known: %v", k)
	}
	for i := 0; i < 2*maxRemembered; i++ {
		valid[string(rune('A'+i))] = true
		_ = g.Check(string(rune('A' + i)))
	}
	if n := len(g.Known()); n != maxRemembered {
		t.Fatalf("%d remembered, want the bound %d", n, maxRemembered)
	}
}

func TestOpenGate(t *testing.T) {
	for _, g := range []*Gate{nil, New(nil)} {
		if !g.Open() || g.Check("") != nil || g.CheckHTTP(httptest.NewRequest("GET", "/", nil)) != nil {
			t.Fatal("an open gate refused")
		}
	}
}

func TestHTTPToken(t *testing.T) {
	for _, c := range []struct{ hdr, url, want string }{
		{"Bearer abc", "/", "abc"},
		{"bearer  abc ", "/", "abc"},
		{"", "/?token=q", "q"},
		{"Basic xyz", "/?token=q", "q"},
		{"Bearer", "/", ""},
	} {
		r := httptest.NewRequest("GET", c.url, nil)
		if c.hdr != "" {
			r.Header.Set("Authorization", c.hdr)
		}
		if got := HTTPToken(r); got != c.want {
			t.Errorf("%q %q: %q, want %q", c.hdr, c.url, got, c.want)
		}
	}
}

func FuzzHTTPToken(f *testing.F) {
	f.Add("Bearer abc", "token=q")
	f.Add("bearer ", "token=%zz")
	f.Fuzz(func(t *testing.T, hdr, query string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", hdr)
		r.URL.RawQuery = query
		_ = HTTPToken(r)
	})
}
