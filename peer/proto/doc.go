// Package proto is what boxes and the hub share (design S1..S8): the
// signalling protocol, box identities and the fan-out burst framing.
//
// A box has a persistent ed25519 Identity (a key file in its data dir); its
// BoxID is derived from the public key, so nobody can claim a box's ID
// without its private key. Boxes register with the hub with a signed Hello
// (timestamp + nonce), and sign every Signal they send to another box, so
// the hub forwards signalling it cannot forge. Every message from the
// network goes through ParseMessage, which validates it for its type.
//
// The hub's side lives in peer/hub, the box's side in peer/box.
package proto
