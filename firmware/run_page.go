package firmware

import (
	"context"
	"flag"
)

// pagePart is the appliance's page. (Scaffold: its owner fills it in.)
type pagePart struct{}

func (p *pagePart) flags(fs *flag.FlagSet)                        {}
func (p *pagePart) start(ctx context.Context, a *appliance) error { return nil }
func (p *pagePart) stop()                                         {}
