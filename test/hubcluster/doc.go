// Package hubcluster tests `callbox hub` as operators run it: real hub
// processes on a SQLite file (restart keeps every pairing) and several
// instances on a real PostgreSQL and a real NATS server (boxes on
// different instances pair and call; an instance dies and its boxes move
// to another while their calls go on). The helpers start PostgreSQL and
// nats-server themselves (internal/pgtest, internal/natstest).
package hubcluster
