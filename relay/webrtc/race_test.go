//go:build race

package webrtc

func init() { raceEnabled = true }
