//go:build race

package media

// The race detector's instrumentation allocates; allocation counts are
// only meaningful without it.
const raceEnabled = true
