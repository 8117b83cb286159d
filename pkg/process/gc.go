package process

import (
	"os"
	"runtime/debug"
)

// gcPercent is the collector's target for Postback's binaries unless
// GOGC is set. Their live heaps are small (tens of MB) while hundreds of
// worker and connection goroutines are alive, so at Go's default of 100 a
// collection runs every few MB of allocation and spends most of its time
// scanning those goroutines' stacks (~18% of the sender's CPU in the burst
// profile). A higher target collects less often: bursts ran 15-20% faster
// for heaps of 40-100 MB per service (docs/benchmarks.md). Standalone,
// whose heap is mostly the embedded server's buffers, caps it with a soft
// memory limit as well.
const gcPercent = 400

// TuneGC applies gcPercent when GOGC is not set.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
