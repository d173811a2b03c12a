package firmware

import (
	"context"
	"flag"
)

// boardPart is the appliance's board. (Scaffold: its owner fills it in.)
type boardPart struct{}

func (p *boardPart) flags(fs *flag.FlagSet)                        {}
func (p *boardPart) start(ctx context.Context, a *appliance) error { return nil }
func (p *boardPart) stop()                                         {}
