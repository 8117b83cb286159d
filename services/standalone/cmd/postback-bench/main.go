// Command postback-bench measures Postback end to end on this machine, in
// two shapes (standalone: one process with embedded NATS and the in-process
// limiter; multi-process: nats-server, Redis and the four services as
// separate processes), next to a physical reference in the same run: a plain
// net/http client sending the same rendered requests to the same receiver
// with keep-alive. Every figure is also given as a ratio to that reference,
// with the CPU seconds each process used.
//
// Scenarios: burst (20,000 ~1 KB action_lifecycle events with 3 items and a
// custom JSON template, through PublishBatch and through unary Publish),
// steady (200/s and 1,000/s), fan-out (1,000 endpoints across 100 accounts)
// noisy neighbour (a 1/s endpoint with a 5,000 backlog beside a steady 200/s
// endpoint), noisy intake (that backlog arriving while the steady 200/s
// runs), slow receiver (a steady 200/s beside 2,000 deliveries to a receiver
// that answers after 9 s and 200 to one whose body never ends, each on an
// endpoint of its own; then whether every slow delivery arrives once and
// every endless one waits for its retry) and poison (a steady 200/s while
// junk is published straight onto the work subjects of every consumer; then
// whether each junk message became a dead letter) and receiver pacing
// (2,000 deliveries to an endpoint allowing 200/s whose server answers 429
// above 50/s, with adaptive pacing off and on, in a deployment of its own
// with the seed's retry schedule scaled down; pacingrx.go). The bursts run
// BENCH_REPEAT (-repeat) times each, reported with the minimum, median and
// maximum over the runs. Loopback only; bounded in count and time; it stops
// every process it started. Run it with `make bench`; `make bench-profile`
// (the -profile flag) also takes pprof CPU and allocation profiles of every
// process during the burst scenarios.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// referenceRuns is how often each reference is measured; the fastest run
// is kept. A reference is the denominator of Postback's ratios, so its best
// run errs against Postback: a slow run of it would flatter the figures.
const referenceRuns = 3

// maxRepeat bounds -repeat: each run of the bursts is two bursts a shape.
const maxRepeat = 20

type options struct {
	bin, redis, out, markdown string
	profile                   string // folder for pprof profiles ("": none)
	events, steadySeconds     int
	repeat                    int // runs of each burst scenario
	shapes, scenarios         string
	selfProfile               string // CPU profile of the bench process itself ("": none)
	timeline                  string // folder for each scenario's latency timeline ("": none)
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder with postback-* and nats-server binaries")
	flag.StringVar(&o.redis, "redis-server", "redis-server", "redis-server binary (multi-process shape)")
	flag.StringVar(&o.out, "out", "bench-result.json", "machine-readable result")
	flag.StringVar(&o.markdown, "markdown", "docs/benchmarks.md", "file to append a dated row to (empty: none)")
	flag.IntVar(&o.events, "events", 20000, "events in the burst scenarios")
	flag.IntVar(&o.steadySeconds, "steady-seconds", 30, "length of each steady scenario")
	flag.IntVar(&o.repeat, "repeat", envInt("BENCH_REPEAT", 1), "runs of each burst scenario, reported with min, median and max (env BENCH_REPEAT)")
	flag.StringVar(&o.shapes, "shapes", "standalone,multi-process", "shapes to run")
	flag.StringVar(&o.scenarios, "scenarios", "", "scenarios to run (comma-separated; empty: all)")
	flag.StringVar(&o.profile, "profile", "", "folder for pprof CPU and allocation profiles of every process during the burst, noisy-intake and slow-receiver scenarios (empty: none)")
	flag.StringVar(&o.timeline, "timeline", "", "folder for a latency timeline of each scenario, <shape>-<scenario>.txt: a line per postback, its publish time (unix ns) and latency (µs) (empty: none)")
	flag.StringVar(&o.selfProfile, "self-cpuprofile", "", "write a CPU profile of the bench process itself (load generator, receiver, references) to this file")
	flag.Parse()
	if o.repeat < 1 || o.repeat > maxRepeat {
		fmt.Fprintf(os.Stderr, "bench: -repeat (BENCH_REPEAT) is %d; it must be 1 to %d\n", o.repeat, maxRepeat)
		os.Exit(2)
	}
	if o.selfProfile != "" {
		f, err := os.Create(o.selfProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget(o))
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// envInt is the integer in the environment variable name, or def when it
// is unset; a value that is not an integer ends the bench, as a bad flag
// value would.
func envInt(name string, def int) int {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s=%q is not an integer\n", name, v)
		os.Exit(2)
	}
	return n
}

// budget bounds the whole run. Ten minutes have always covered the
// references and the scenarios up to noisy-intake in both shapes (they take
// about five); slow-receiver and poison add, in each shape, two steady runs,
// the wait for their deliveries (up to 30 s each) and their own bounded
// waits (up to 120 s for the slow deliveries, 60 s for the dead letters);
// each further run of the bursts adds two bursts a shape (seconds each,
// a 90 s wait at worst: two minutes is the common case with room to spare).
func budget(o options) time.Duration {
	shapes := time.Duration(len(strings.Split(o.shapes, ",")))
	steady := time.Duration(o.steadySeconds) * time.Second
	perShape := 2*(steady+30*time.Second) + 3*time.Minute + time.Duration(o.repeat-1)*2*time.Minute
	if selected, _ := pacingSelected(o.scenarios); selected {
		perShape += 2*pacingLimit + time.Minute // receiver-pacing: two arms
	}
	return 10*time.Minute + shapes*perShape
}

// Report is the JSON result.
type Report struct {
	Date    string              `json:"date"`
	Commit  string              `json:"commit"`
	Machine Machine             `json:"machine"`
	Raw     RawResult           `json:"raw_reference"`
	Bare    BareResult          `json:"bare_pipeline"`
	Shapes  map[string][]Result `json:"shapes"`
	// Pacing is the receiver-pacing scenario, in each shape (pacingrx.go).
	Pacing  []PacingResult `json:"receiver_pacing,omitempty"`
	Elapsed string         `json:"elapsed"`
}

// Machine describes where it ran.
type Machine struct {
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory_gb"`
	Go       string `json:"go"`
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	work, err := os.MkdirTemp("", "postback-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rc, err := startReceiver()
	if err != nil {
		return err
	}
	b := &bench{rc: rc, events: o.events, steady: time.Duration(o.steadySeconds) * time.Second, only: o.scenarios, repeat: o.repeat, timeline: o.timeline}
	for _, dir := range []string{o.profile, o.timeline} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	report := Report{Date: time.Now().UTC().Format(time.RFC3339), Commit: commit(), Machine: machine(), Shapes: map[string][]Result{}}
	pacing, pacingAlone := pacingSelected(o.scenarios)
	for run := 1; run <= referenceRuns && !pacingAlone; run++ {
		progress("raw reference %d/%d: %d requests over keep-alive, 64 at a time", run, referenceRuns, o.events)
		r := b.raw(ctx, o.events)
		progress("raw reference %d/%d: %.0f requests/s", run, referenceRuns, r.PerSecond)
		if r.PerSecond > report.Raw.PerSecond {
			report.Raw = r
		}
	}
	for run := 1; run <= referenceRuns && !pacingAlone; run++ {
		progress("bare pipeline reference %d/%d: %d events, in-process publisher → JetStream (file) → renderer → sender", run, referenceRuns, o.events)
		r, err := b.bare(ctx, filepath.Join(work, fmt.Sprintf("bare-%d", run)), fmt.Sprintf("bare-%d", run), o.events)
		if err != nil {
			return err
		}
		progress("bare pipeline reference %d/%d: %.0f delivered/s", run, referenceRuns, r.DeliveredPerSec)
		if r.DeliveredPerSec > report.Bare.DeliveredPerSec {
			report.Bare = r
		}
	}
	if !pacingAlone {
		report.Bare.RatioToRaw = report.Bare.DeliveredPerSec / report.Raw.PerSecond
		progress("references (fastest of %d runs each): raw %.0f requests/s, bare pipeline %.0f delivered/s (%.2f of raw)",
			referenceRuns, report.Raw.PerSecond, report.Bare.DeliveredPerSec, report.Bare.RatioToRaw)
	}
	for _, shape := range strings.Split(o.shapes, ",") {
		if pacingAlone {
			break
		}
		d, err := startShape(ctx, strings.TrimSpace(shape), o.bin, o.redis, work, o.profile != "")
		if err != nil {
			return err
		}
		if o.profile != "" {
			b.profile = func(scenario string) func() { return d.profile(o.profile, scenario) }
		}
		results, err := b.runShape(ctx, d, report.Raw)
		d.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", d.shape, err)
		}
		report.Shapes[d.shape] = results
	}
	for _, shape := range strings.Split(o.shapes, ",") {
		if !pacing {
			break
		}
		r, err := b.receiverPacing(ctx, o, strings.TrimSpace(shape), work)
		if err != nil {
			return fmt.Errorf("receiver-pacing: %s: %w", shape, err)
		}
		report.Pacing = append(report.Pacing, r)
	}
	report.Elapsed = time.Since(began).Round(time.Second).String()
	js, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(o.out, js, 0o644); err != nil {
		return err
	}
	printReport(os.Stdout, report)
	if o.markdown != "" && !pacingAlone { // receiver-pacing alone has no row of figures
		if err := appendMarkdown(o.markdown, report); err != nil {
			return err
		}
	}
	progress("done in %s; result in %s", report.Elapsed, o.out)
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:")), "%d", &kb)
		m.MemoryGB = fmt.Sprintf("%.1f", float64(kb)/(1<<20))
	}
	return m
}
