// Package browser holds the phone page's tests in a real browser: headless
// Debian Chromium driven by playwright-core (Node) against `callbox run`
// on synthetic sources, plus the Node unit tests of the page's modules.
// The Go tests here build the binary, start and restart the box, run the
// Node scenarios (scenario.mjs) and judge the numbers they report.
package browser
