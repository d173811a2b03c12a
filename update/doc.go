// Package update installs signed RAUC bundles into the box's inactive slot
// and settles the trial boot that follows: it marks the new slot good once
// callbox served its page and the watchdog was fed long enough, and records
// that an update failed when the box came back on the old slot.
//
// RAUC (the rauc command and its D-Bus service) does the installing and
// checks the bundle's signature; the boot selection is the firmware's
// tryboot (docs/update.md). This package drives rauc, keeps the update's
// state in a small JSON file on the data partition (what the page and
// `callbox update --status` show, and what survives the reboot), and parses
// rauc's output.
package update
