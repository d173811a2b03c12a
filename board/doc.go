// Package board is the box's human interface: two buttons, one status LED
// (single colour or RGB), and the device state machine between them.
//
// # Concepts
//
// The Machine is pure logic. It is fed facts (booted, viewers, call state,
// faults, phones waiting to pair) and button edges, reads time only from an
// injected Clock, and answers with a Status (the state a person should see)
// and Actions (what the box must do: mute, call, approve pairing, factory
// reset). Tests drive it with a fake clock; nothing in it touches hardware.
//
// Every Status maps to an LED Pattern (Patterns lists them; docs/board.md
// has the table). A Player goroutine plays the current pattern on an LED, a
// small interface that a GPIO output, three of them for an RGB LED, or the
// terminal of a simulated board all satisfy.
//
// The Box ties a Machine to the pairing registry (board/pairing), the
// persistent state (board/store) and the hooks the rest of the appliance
// fills (mute, call, hang up); it is what the firmware talks to.
//
// Profiles name the supported boards and their default wiring; a simulated
// board (Sim) stands in for the real buttons and LED on machines without
// GPIO, with keys in the terminal.
package board
