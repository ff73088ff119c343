//go:build race

package tests

// raceBuild makes the gateway binary under test race-instrumented whenever
// the tests themselves run with -race, so end-to-end runs catch data races
// in the server too.
const raceBuild = true
