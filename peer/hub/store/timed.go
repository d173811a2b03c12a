package store

import (
	"context"
	"time"
)

// Timed wraps s so that observe hears how long each call took, by
// operation name ("put_box", "peers", ...): the hub's store-latency metric.
func Timed(s Store, observe func(op string, d time.Duration)) Store {
	return &timed{s: s, observe: observe}
}

type timed struct {
	s       Store
	observe func(string, time.Duration)
}

func (t *timed) since(op string, start time.Time) { t.observe(op, time.Since(start)) }

func (t *timed) PutBox(ctx context.Context, b Box) error {
	defer t.since("put_box", time.Now())
	return t.s.PutBox(ctx, b)
}

func (t *timed) GetBox(ctx context.Context, id string) (Box, error) {
	defer t.since("get_box", time.Now())
	return t.s.GetBox(ctx, id)
}

func (t *timed) DeleteBox(ctx context.Context, id string) error {
	defer t.since("delete_box", time.Now())
	return t.s.DeleteBox(ctx, id)
}

func (t *timed) ExpireBoxes(ctx context.Context, before time.Time) (int, error) {
	defer t.since("expire_boxes", time.Now())
	return t.s.ExpireBoxes(ctx, before)
}

func (t *timed) AddPair(ctx context.Context, a, b string, at time.Time) (bool, error) {
	defer t.since("add_pair", time.Now())
	return t.s.AddPair(ctx, a, b, at)
}

func (t *timed) RemovePair(ctx context.Context, a, b string) error {
	defer t.since("remove_pair", time.Now())
	return t.s.RemovePair(ctx, a, b)
}

func (t *timed) Paired(ctx context.Context, a, b string) (bool, error) {
	defer t.since("paired", time.Now())
	return t.s.Paired(ctx, a, b)
}

func (t *timed) Peers(ctx context.Context, id string) ([]Box, error) {
	defer t.since("peers", time.Now())
	return t.s.Peers(ctx, id)
}

func (t *timed) PutCode(ctx context.Context, c Code, now time.Time) error {
	defer t.since("put_code", time.Now())
	return t.s.PutCode(ctx, c, now)
}

func (t *timed) TakeCode(ctx context.Context, code string, now time.Time) (Code, error) {
	defer t.since("take_code", time.Now())
	return t.s.TakeCode(ctx, code, now)
}

func (t *timed) PressButton(ctx context.Context, box string, now time.Time, window time.Duration) (string, error) {
	defer t.since("press_button", time.Now())
	return t.s.PressButton(ctx, box, now, window)
}

func (t *timed) CancelButton(ctx context.Context, box string) error {
	defer t.since("cancel_button", time.Now())
	return t.s.CancelButton(ctx, box)
}

func (t *timed) UseNonce(ctx context.Context, box string, nonce []byte, now, expires time.Time) (bool, error) {
	defer t.since("use_nonce", time.Now())
	return t.s.UseNonce(ctx, box, nonce, now, expires)
}

func (t *timed) Hit(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	defer t.since("hit", time.Now())
	return t.s.Hit(ctx, key, now, window)
}

func (t *timed) ResetLimit(ctx context.Context, key string) error {
	defer t.since("reset_limit", time.Now())
	return t.s.ResetLimit(ctx, key)
}

func (t *timed) Sweep(ctx context.Context, now time.Time) error {
	defer t.since("sweep", time.Now())
	return t.s.Sweep(ctx, now)
}

func (t *timed) Counts(ctx context.Context) (int, int, error) {
	defer t.since("counts", time.Now())
	return t.s.Counts(ctx)
}

func (t *timed) Ping(ctx context.Context) error {
	defer t.since("ping", time.Now())
	return t.s.Ping(ctx)
}

func (t *timed) Close() error { return t.s.Close() }

func (t *timed) CodeWithPrefix(ctx context.Context, prefix string, now time.Time) (Code, error) {
	defer t.since("code_with_prefix", time.Now())
	return t.s.CodeWithPrefix(ctx, prefix, now)
}

func (t *timed) DeleteCode(ctx context.Context, code string) error {
	defer t.since("delete_code", time.Now())
	return t.s.DeleteCode(ctx, code)
}

func (t *timed) PutPairing(ctx context.Context, p Pairing) error {
	defer t.since("put_pairing", time.Now())
	return t.s.PutPairing(ctx, p)
}

func (t *timed) GetPairing(ctx context.Context, box string, now time.Time) (Pairing, error) {
	defer t.since("get_pairing", time.Now())
	return t.s.GetPairing(ctx, box, now)
}

func (t *timed) MarkPairing(ctx context.Context, owner, joiner string, flags int, now time.Time) (int, error) {
	defer t.since("mark_pairing", time.Now())
	return t.s.MarkPairing(ctx, owner, joiner, flags, now)
}

func (t *timed) DeletePairing(ctx context.Context, box string) error {
	defer t.since("delete_pairing", time.Now())
	return t.s.DeletePairing(ctx, box)
}

func (t *timed) ExpireUnpaired(ctx context.Context, before time.Time) (int, error) {
	defer t.since("expire_unpaired", time.Now())
	return t.s.ExpireUnpaired(ctx, before)
}
