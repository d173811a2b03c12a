package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/pgtest"
	"github.com/callbox/callbox/internal/testenv"
)

// The contract: every engine passes the same tests.
func TestContractSQLite(t *testing.T) {
	contract(t, func(t *testing.T) Store {
		s, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContractPostgres(t *testing.T) {
	testenv.Short(t) // a PostgreSQL server per run: the full suite runs it, -short (and qemu) not
	url := pgtest.Start(t)
	n := 0
	contract(t, func(t *testing.T) Store {
		// A database per subtest: each starts from an empty schema.
		n++
		db := fmt.Sprintf("contract%d", n)
		admin, err := OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.(*sqlStore).db.Exec("CREATE DATABASE " + db); err != nil {
			t.Fatal(err)
		}
		admin.Close()
		s, err := Open(context.Background(), replaceDB(url, db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func replaceDB(url, db string) string {
	// url is postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	i := bytes.LastIndexByte([]byte(url), '/')
	q := bytes.IndexByte([]byte(url), '?')
	return url[:i+1] + db + url[q:]
}

var t0 = time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)

func box(id string) Box {
	return Box{ID: id, Key: bytes.Repeat([]byte(id[:1]), 32), Name: "box " + id, LastSeen: t0}
}

func contract(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("Boxes", func(t *testing.T) {
		s := open(t)
		if _, err := s.GetBox(ctx, "aaaa"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing box: err = %v", err)
		}
		a := box("aaaa")
		if err := s.PutBox(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBox(ctx, "aaaa")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a.ID || !bytes.Equal(got.Key, a.Key) || got.Name != a.Name || !got.Created.Equal(t0) || !got.LastSeen.Equal(t0) {
			t.Fatalf("got %+v, want %+v", got, a)
		}
		// A later registration renames and moves LastSeen; Created stays.
		a.Name, a.LastSeen = "kitchen", t0.Add(time.Hour+1500*time.Microsecond)
		if err := s.PutBox(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetBox(ctx, "aaaa")
		if got.Name != "kitchen" || !got.Created.Equal(t0) || !got.LastSeen.Equal(t0.Add(time.Hour+time.Millisecond)) {
			t.Fatalf("after update: %+v", got)
		}
		if err := s.PutBox(ctx, Box{ID: "x"}); err == nil {
			t.Fatal("box without key accepted")
		}
		if n, p, err := s.Counts(ctx); err != nil || n != 1 || p != 0 {
			t.Fatalf("counts = %d, %d, %v", n, p, err)
		}
	})
	t.Run("Pairs", func(t *testing.T) {
		s := open(t)
		for _, id := range []string{"aaaa", "bbbb", "cccc", "dddd"} {
			if err := s.PutBox(ctx, box(id)); err != nil {
				t.Fatal(err)
			}
		}
		if added, err := s.AddPair(ctx, "aaaa", "cccc", t0); err != nil || !added {
			t.Fatalf("add = %v, %v", added, err)
		}
		if added, err := s.AddPair(ctx, "cccc", "aaaa", t0); err != nil || added {
			t.Fatalf("add again = %v, %v", added, err)
		}
		if _, err := s.AddPair(ctx, "aaaa", "bbbb", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddPair(ctx, "aaaa", "aaaa", t0); err == nil {
			t.Fatal("self-pair accepted")
		}
		if _, err := s.AddPair(ctx, "aaaa", "zzzz", t0); err == nil {
			t.Fatal("pair with an unknown box accepted")
		}
		for _, c := range []struct {
			a, b string
			want bool
		}{{"aaaa", "cccc", true}, {"cccc", "aaaa", true}, {"bbbb", "aaaa", true}, {"bbbb", "cccc", false}, {"dddd", "aaaa", false}} {
			if got, err := s.Paired(ctx, c.a, c.b); err != nil || got != c.want {
				t.Errorf("Paired(%s, %s) = %v, %v", c.a, c.b, got, err)
			}
		}
		peers, err := s.Peers(ctx, "aaaa")
		if err != nil || len(peers) != 2 || peers[0].ID != "bbbb" || peers[1].ID != "cccc" || peers[1].Name != "box cccc" || !bytes.Equal(peers[1].Key, box("cccc").Key) {
			t.Fatalf("peers of a = %+v, %v", peers, err)
		}
		if peers, _ := s.Peers(ctx, "dddd"); len(peers) != 0 {
			t.Fatalf("peers of d = %+v", peers)
		}
		if _, p, _ := s.Counts(ctx); p != 2 {
			t.Fatalf("pairs = %d", p)
		}
		if err := s.RemovePair(ctx, "cccc", "aaaa"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Paired(ctx, "aaaa", "cccc"); got {
			t.Fatal("still paired after RemovePair")
		}
		// Deleting a box takes its pairs with it.
		if err := s.DeleteBox(ctx, "bbbb"); err != nil {
			t.Fatal(err)
		}
		if peers, _ := s.Peers(ctx, "aaaa"); len(peers) != 0 {
			t.Fatalf("peers after delete = %+v", peers)
		}
	})
	t.Run("ExpireBoxes", func(t *testing.T) {
		s := open(t)
		old, fresh := box("oooo"), box("ffff")
		old.LastSeen = t0.Add(-48 * time.Hour)
		for _, b := range []Box{old, fresh} {
			if err := s.PutBox(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AddPair(ctx, "oooo", "ffff", t0); err != nil {
			t.Fatal(err)
		}
		n, err := s.ExpireBoxes(ctx, t0.Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("expired %d, %v", n, err)
		}
		if _, err := s.GetBox(ctx, "oooo"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old box still there: %v", err)
		}
		if peers, _ := s.Peers(ctx, "ffff"); len(peers) != 0 {
			t.Fatalf("pair with expired box remains: %+v", peers)
		}
	})
	t.Run("ExpireUnpaired", func(t *testing.T) {
		s := open(t)
		lonely, a, b, fresh := box("llll"), box("aaaa"), box("bbbb"), box("nnnn")
		for _, x := range []*Box{&lonely, &a, &b} {
			x.LastSeen = t0.Add(-48 * time.Hour)
		}
		for _, x := range []Box{lonely, a, b, fresh} {
			if err := s.PutBox(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AddPair(ctx, "aaaa", "bbbb", t0); err != nil {
			t.Fatal(err)
		}
		n, err := s.ExpireUnpaired(ctx, t0.Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("expired %d, %v; want the one old box without a pair", n, err)
		}
		if _, err := s.GetBox(ctx, "llll"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old unpaired box still there: %v", err)
		}
		for _, id := range []string{"aaaa", "bbbb", "nnnn"} {
			if _, err := s.GetBox(ctx, id); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	})
	t.Run("CodePrefix", func(t *testing.T) {
		s := open(t)
		if err := s.PutCode(ctx, Code{Code: "1234567890", Box: "aaaa", Expires: t0.Add(time.Minute)}, t0); err != nil {
			t.Fatal(err)
		}
		c, err := s.CodeWithPrefix(ctx, "1234", t0)
		if err != nil || c.Code != "1234567890" || c.Box != "aaaa" {
			t.Fatalf("by prefix: %+v %v", c, err)
		}
		if _, err := s.CodeWithPrefix(ctx, "1235", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another prefix: %v", err)
		}
		if _, err := s.CodeWithPrefix(ctx, "1234", t0.Add(2*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired code by prefix: %v", err)
		}
		if err := s.DeleteCode(ctx, "1234567890"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CodeWithPrefix(ctx, "1234", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted code: %v", err)
		}
	})
	t.Run("Pairings", func(t *testing.T) {
		s := open(t)
		exp := t0.Add(5 * time.Minute)
		if err := s.PutPairing(ctx, Pairing{Owner: "aaaa", Joiner: "bbbb", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"aaaa", "bbbb"} {
			p, err := s.GetPairing(ctx, id, t0)
			if err != nil || p.Owner != "aaaa" || p.Joiner != "bbbb" || !p.Expires.Equal(exp) {
				t.Fatalf("pairing of %s: %+v %v", id, p, err)
			}
		}
		if f, err := s.MarkPairing(ctx, "aaaa", "bbbb", 1, t0); err != nil || f != 1 {
			t.Fatalf("mark 1: %d %v", f, err)
		}
		if f, err := s.MarkPairing(ctx, "aaaa", "bbbb", 4, t0); err != nil || f != 5 {
			t.Fatalf("mark 4: %d %v", f, err)
		}
		if _, err := s.MarkPairing(ctx, "bbbb", "aaaa", 2, t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("mark with the roles swapped: %v", err)
		}
		// A new pairing of either box replaces the old one.
		if err := s.PutPairing(ctx, Pairing{Owner: "cccc", Joiner: "aaaa", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPairing(ctx, "bbbb", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replaced pairing still there: %v", err)
		}
		if p, err := s.GetPairing(ctx, "aaaa", t0); err != nil || p.Owner != "cccc" || p.Flags != 0 {
			t.Fatalf("new pairing %+v %v", p, err)
		}
		if _, err := s.GetPairing(ctx, "aaaa", exp); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired pairing: %v", err)
		}
		if err := s.Sweep(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPairing(ctx, Pairing{Owner: "dddd", Joiner: "eeee", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePairing(ctx, "eeee"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPairing(ctx, "dddd", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted pairing: %v", err)
		}
	})
	t.Run("Codes", func(t *testing.T) {
		s := open(t)
		exp := t0.Add(5 * time.Minute)
		if err := s.PutCode(ctx, Code{Code: "123456", Box: "aaaa", Expires: exp}, t0); err != nil {
			t.Fatal(err)
		}
		// Another box cannot take over a live code ...
		if err := s.PutCode(ctx, Code{Code: "123456", Box: "bbbb", Expires: exp}, t0); !errors.Is(err, ErrCodeTaken) {
			t.Fatalf("duplicate code: err = %v", err)
		}
		// ... and a box asking again replaces its own older code.
		if err := s.PutCode(ctx, Code{Code: "654321", Box: "aaaa", Expires: exp}, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeCode(ctx, "123456", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replaced code still valid: %v", err)
		}
		if _, err := s.TakeCode(ctx, "654321", exp); !errors.Is(err, ErrNotFound) {
			t.Fatalf("code valid at its expiry: %v", err)
		}
		c, err := s.TakeCode(ctx, "654321", t0.Add(time.Minute))
		if err != nil || c.Box != "aaaa" || !c.Expires.Equal(exp) {
			t.Fatalf("take = %+v, %v", c, err)
		}
		if _, err := s.TakeCode(ctx, "654321", t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("code taken twice: %v", err)
		}
		// An expired code of another box can be reused.
		if err := s.PutCode(ctx, Code{Code: "111111", Box: "aaaa", Expires: t0.Add(time.Second)}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCode(ctx, Code{Code: "111111", Box: "bbbb", Expires: exp}, t0.Add(2*time.Second)); err != nil {
			t.Fatalf("reuse of an expired code: %v", err)
		}
		// Of many concurrent takers exactly one wins.
		if err := s.PutCode(ctx, Code{Code: "222222", Box: "cccc", Expires: exp}, t0); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.TakeCode(ctx, "222222", t0); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d takers got the code", wins)
		}
		// Sweep removes expired codes only.
		if err := s.PutCode(ctx, Code{Code: "333333", Box: "dddd", Expires: t0.Add(time.Second)}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.Sweep(ctx, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCode(ctx, Code{Code: "333333", Box: "eeee", Expires: exp}, t0); err != nil {
			t.Fatalf("swept code not free: %v", err) // at t0 it would still be live, had it not been swept
		}
		if _, err := s.TakeCode(ctx, "111111", t0.Add(time.Minute)); err != nil {
			t.Fatalf("live code swept: %v", err)
		}
	})
	t.Run("Button", func(t *testing.T) {
		s := open(t)
		w := 15 * time.Second
		if other, err := s.PressButton(ctx, "aaaa", t0, w); err != nil || other != "" {
			t.Fatalf("first press = %q, %v", other, err)
		}
		if other, _ := s.PressButton(ctx, "aaaa", t0.Add(time.Second), w); other != "" {
			t.Fatalf("same box twice matched %q", other)
		}
		if other, _ := s.PressButton(ctx, "bbbb", t0.Add(3*time.Second), w); other != "aaaa" {
			t.Fatalf("second box matched %q, want aaaa", other)
		}
		// The match consumed the press.
		if other, _ := s.PressButton(ctx, "cccc", t0.Add(4*time.Second), w); other != "" {
			t.Fatalf("consumed press matched again: %q", other)
		}
		if other, _ := s.PressButton(ctx, "dddd", t0.Add(4*time.Second+w+time.Millisecond), w); other != "" {
			t.Fatalf("press outside the window matched %q", other)
		}
		if err := s.CancelButton(ctx, "dddd"); err != nil {
			t.Fatal(err)
		}
		if other, _ := s.PressButton(ctx, "eeee", t0.Add(20*time.Second), w); other != "" {
			t.Fatalf("cancelled press matched %q", other)
		}
	})
	t.Run("Nonces", func(t *testing.T) {
		s := open(t)
		n1 := []byte("0123456789abcdef")
		if fresh, err := s.UseNonce(ctx, "aaaa", n1, t0, t0.Add(2*time.Minute)); err != nil || !fresh {
			t.Fatalf("first use = %v, %v", fresh, err)
		}
		if fresh, _ := s.UseNonce(ctx, "aaaa", n1, t0.Add(time.Minute), t0.Add(3*time.Minute)); fresh {
			t.Fatal("replayed nonce accepted")
		}
		if fresh, _ := s.UseNonce(ctx, "bbbb", n1, t0, t0.Add(2*time.Minute)); !fresh {
			t.Fatal("another box's equal nonce refused")
		}
		if fresh, _ := s.UseNonce(ctx, "aaaa", n1, t0.Add(2*time.Minute), t0.Add(4*time.Minute)); !fresh {
			t.Fatal("nonce still refused after it expired")
		}
		if err := s.Sweep(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		s := open(t)
		w := time.Minute
		for i := 1; i <= 3; i++ {
			if n, err := s.Hit(ctx, "code:1.2.3.4", t0.Add(time.Duration(i)*time.Second), w); err != nil || n != i {
				t.Fatalf("hit %d = %d, %v", i, n, err)
			}
		}
		if n, _ := s.Hit(ctx, "code:5.6.7.8", t0, w); n != 1 {
			t.Fatalf("other key = %d", n)
		}
		// The window started at the first hit (t0+1s): it ends at t0+61s.
		if n, _ := s.Hit(ctx, "code:1.2.3.4", t0.Add(61*time.Second), w); n != 1 {
			t.Fatalf("after the window = %d", n)
		}
		if err := s.ResetLimit(ctx, "code:5.6.7.8"); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Hit(ctx, "code:5.6.7.8", t0, w); n != 1 {
			t.Fatalf("after reset = %d", n)
		}
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Hit(ctx, "burst", t0, w); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n, _ := s.Hit(ctx, "burst", t0, w); n != 21 {
			t.Fatalf("concurrent hits counted %d, want 21", n)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		// Migrations run once: opening the same store again keeps the data.
		s := open(t)
		if err := s.PutBox(ctx, box("aaaa")); err != nil {
			t.Fatal(err)
		}
		ss := s.(*sqlStore)
		if err := ss.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := ss.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != SchemaVersion() {
			t.Fatalf("schema version = %d, %v", v, err)
		}
		if _, err := s.GetBox(ctx, "aaaa"); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	for _, u := range []string{"", "mysql://x", "sqlite:", "/var/lib/hub.db"} {
		if _, err := Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "hub.db")
	s, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"aaaa", "bbbb"} {
		if err := s.PutBox(ctx, box(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddPair(ctx, "aaaa", "bbbb", t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Paired(ctx, "bbbb", "aaaa"); err != nil || !ok {
		t.Fatalf("pair lost across reopen: %v, %v", ok, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://hub:s3cret@db:5432/hub": "postgres://hub:xxxxx@db:5432/hub",
		"postgres://hub@db/hub":             "postgres://hub@db/hub",
		"postgres://db/hub?x=a@b":           "postgres://db/hub?x=a@b",
		"sqlite:/var/lib/callbox/hub.db":    "sqlite:/var/lib/callbox/hub.db",
		"postgresql://u:p@w@db/hub":         "postgresql://u:xxxxx@db/hub",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimedReportsEachCall(t *testing.T) {
	ctx := context.Background()
	inner, err := Open(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	s := Timed(inner, func(op string, d time.Duration) {
		if d < 0 {
			t.Errorf("%s took %v", op, d)
		}
		ops = append(ops, op)
	})
	defer s.Close()
	if err := s.PutBox(ctx, box("aaaa")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBox(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Peers(ctx, "aaaa"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ops) != "[put_box get_box peers]" {
		t.Fatalf("observed %v", ops)
	}
}

// BenchmarkRegistrationSQLite is a registration's store work on SQLite:
// the nonce, the box upsert, its peers.
func BenchmarkRegistrationSQLite(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "hub.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key := bytes.Repeat([]byte{7}, 32)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("box%013d", i)
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if _, err := s.UseNonce(ctx, id, key[:16], now, now.Add(2*time.Minute)); err != nil {
			b.Fatal(err)
		}
		if err := s.PutBox(ctx, Box{ID: id, Key: key, Name: "bench", LastSeen: now}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Peers(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
