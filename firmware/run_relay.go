package firmware

import (
	"context"
	"flag"
)

// relayPart is the appliance's relay. (Scaffold: its owner fills it in.)
type relayPart struct{}

func (p *relayPart) flags(fs *flag.FlagSet)                        {}
func (p *relayPart) start(ctx context.Context, a *appliance) error { return nil }
func (p *relayPart) stop()                                         {}
