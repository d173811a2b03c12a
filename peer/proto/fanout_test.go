package proto

import "testing"

func TestParseFanoutControl(t *testing.T) {
	for _, ok := range []string{`{"phones":"hub"}`, `{"phones":"direct"}`, `{"keyframe":true}`, `{"viewers":3}`, `{}`, `{"allowed":["abababababababababababababababababababababababababababababababab"],"allowed_set":true}`, `{"allowed_set":true}`} {
		if _, err := ParseFanoutControl([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"phones":"moon"}`, `{"viewers":-1}`, `{"viewers":1e9}`, `{"x":1}`, `[`, `"hub"`, `{"allowed":["AB"]}`, `{"allowed":["ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"]}`} {
		if _, err := ParseFanoutControl([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func FuzzParseFanoutControl(f *testing.F) {
	for _, s := range []string{`{"phones":"hub"}`, `{"keyframe":true,"viewers":2}`, `{"viewers":-1}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseFanoutControl(b)
		if err == nil && c.Viewers != nil && *c.Viewers < 0 {
			t.Fatalf("accepted %d viewers", *c.Viewers)
		}
	})
}
