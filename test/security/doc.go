// Package security runs issue 12's probes against `callbox run` as a
// separate process, on loopback, and checks that each one is refused or
// survived: header floods and idle connections (memory and descriptors),
// DNS rebinding and cross-site requests, pairing without consent, and what
// a factory reset leaves behind. docs/security.md maps each threat to its
// defence and to the test here or in the packages that proves it.
package security
