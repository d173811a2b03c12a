package firmware

import (
	"context"
	"flag"
)

// mediaPart is the appliance's media. (Scaffold: its owner fills it in.)
type mediaPart struct{}

func (p *mediaPart) flags(fs *flag.FlagSet)                        {}
func (p *mediaPart) start(ctx context.Context, a *appliance) error { return nil }
func (p *mediaPart) stop()                                         {}
