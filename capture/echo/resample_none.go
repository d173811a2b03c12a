//go:build !cgo || nospeex

package echo

import "github.com/callbox/callbox/capture/pcmu"

// newResampler is capture/pcmu's in a build without speexdsp (where there
// is no canceller to feed anyway).
func newResampler(in, out int) (resampler, error) {
	r, err := pcmu.NewResampler(in, out)
	if err != nil {
		return nil, err
	}
	return pcmuResampler{r}, nil
}

type pcmuResampler struct{ *pcmu.Resampler }

func (pcmuResampler) Close() {}
