package health

import (
	"net/http"
	"net/http/pprof"
)

// MountPProf mounts Go's profiling handlers (net/http/pprof) on mux under
// /debug/pprof/, beside the probes and /metrics. Processes call it only when
// POSTBACK_PPROF is on: profiles expose internals.
func MountPProf(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves the named profiles: allocs, heap, goroutine, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
