// Command postback-bench-history measures the delivery log against the
// history it retains, for each history backend (the embedded SQLite file and
// PostgreSQL), and prints a Markdown report (JSON too, with -out).
//
// For each backend it works in a temporary directory (PostgreSQL: a private
// server started with pgtest, a database of its own) and, for each stage N
// (cumulative):
//
//  1. with postback-standalone stopped, opens the store directly and appends
//     deliveries until it holds N (one account, brand-bench; 10 endpoints;
//     80% SUCCEEDED, 8% FAILED, 6% DEAD, 3% RETRYING, 2% CANCELLED, 1%
//     PENDING; created over the last 29 days; 1-3 attempts; a ~300-byte
//     job), in batches of about 2,000 entries, then checks the store's
//     counts against what it wrote;
//  2. starts bin/postback-standalone on free loopback ports with that store
//     and times it to /readyz 200 (a restart with N retained);
//  3. publishes -burst events through the real pipeline to an endpoint of
//     the same account posting to a receiver in this process, and waits
//     until the receiver got them all and the delivery log lists them all
//     SUCCEEDED; then reads the standalone's RSS, the size of its JetStream
//     directory and the history's size;
//  4. times the delivery log's queries over gRPC (-samples each: lists by
//     account, endpoint, status, time range and event, the 100th page,
//     GetDelivery, ListAttempts), checking every answer against what it
//     wrote: a wrong answer ends the run, no figure is given for it;
//  5. stops the standalone (SIGTERM).
//
// Everything runs on 127.0.0.1; every wait is bounded and so is the whole
// run (-timeout); child processes die with the bench and are stopped on
// every way out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin      string
	backends []string
	stages   []int
	samples  int
	burst    int
	out      string
	markdown string
	keep     bool
	timeout  time.Duration
	seed     uint64
}

func main() {
	var o options
	var backends, stages string
	flag.StringVar(&o.bin, "bin", "bin", "folder with postback-standalone")
	flag.StringVar(&backends, "backends", "sqlite,postgres", "history backends to measure (sqlite, postgres)")
	flag.StringVar(&stages, "stages", "0,250000,500000,1000000", "deliveries retained at each stage (cumulative, rising)")
	flag.IntVar(&o.samples, "samples", 200, "calls of each query measured at each stage")
	flag.IntVar(&o.burst, "burst", 5000, "events published through the pipeline at each stage")
	flag.StringVar(&o.out, "out", "", "write the JSON result to this file (empty: none)")
	flag.StringVar(&o.markdown, "markdown", "", "append the Markdown report to this file (empty: stdout only)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (data dirs, standalone logs)")
	flag.DurationVar(&o.timeout, "timeout", 0, "stop the whole run after this long (0: a budget from the stages)")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the fill and of the queries' choices (0: random)")
	flag.Parse()
	if err := o.parse(backends, stages); err != nil {
		fmt.Fprintln(os.Stderr, "bench-history:", err)
		os.Exit(2)
	}
	if o.timeout == 0 {
		o.timeout = budget(o)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	err := run(ctx, o)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the run's budget, -timeout %s, is spent)", err, o.timeout)
		}
		fmt.Fprintln(os.Stderr, "bench-history: FAILED:", err)
		os.Exit(1)
	}
}

func (o *options) parse(backends, stages string) error {
	for _, b := range strings.Split(backends, ",") {
		switch b = strings.TrimSpace(b); b {
		case "sqlite", "postgres":
			o.backends = append(o.backends, b)
		case "":
		default:
			return fmt.Errorf("-backends: unknown backend %q (want sqlite, postgres)", b)
		}
	}
	if len(o.backends) == 0 {
		return errors.New("-backends: none")
	}
	prev := -1
	for _, s := range strings.Split(stages, ",") {
		s = strings.TrimSpace(strings.ReplaceAll(s, "_", ""))
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("-stages: %q is not a count", s)
		}
		if n <= prev {
			return fmt.Errorf("-stages: %d after %d: stages are cumulative and must rise", n, prev)
		}
		o.stages = append(o.stages, n)
		prev = n
	}
	if len(o.stages) == 0 {
		return errors.New("-stages: none")
	}
	if o.samples < 1 || o.samples > 100_000 {
		return fmt.Errorf("-samples %d: want 1 to 100000", o.samples)
	}
	if o.burst < 0 || o.burst > 1_000_000 {
		return fmt.Errorf("-burst %d: want 0 to 1000000", o.burst)
	}
	if o.seed == 0 {
		o.seed = rand.Uint64()
	}
	return nil
}

// budget bounds the whole run: per backend and stage, the bounded waits (a
// start up to 3 min, the burst's two 2-min waits, the queries, a stop) come
// to well under 8 minutes; the fill is given 1,000 deliveries a second, a
// fraction of either backend's rate.
func budget(o options) time.Duration {
	last := o.stages[len(o.stages)-1]
	perBackend := time.Duration(len(o.stages))*8*time.Minute + time.Duration(last/1000)*time.Second
	return 5*time.Minute + time.Duration(len(o.backends))*perBackend
}

// Report is the JSON result.
type Report struct {
	Date     string          `json:"date"`
	Commit   string          `json:"commit"`
	Machine  Machine         `json:"machine"`
	Options  ReportOptions   `json:"options"`
	Backends []BackendResult `json:"backends"`
	Elapsed  string          `json:"elapsed"`
}

// ReportOptions are the run's settings.
type ReportOptions struct {
	Stages  []int  `json:"stages"`
	Samples int    `json:"samples"`
	Burst   int    `json:"burst"`
	Seed    uint64 `json:"seed"`
}

// Machine describes where it ran.
type Machine struct {
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory_gb"`
	Go       string `json:"go"`
}

// BackendResult is one backend's stages.
type BackendResult struct {
	Backend string        `json:"backend"`
	Stages  []StageResult `json:"stages"`
}

// StageResult is one stage of one backend.
type StageResult struct {
	N int `json:"n"`
	// Held is what the history held when the standalone started (the fill
	// and the earlier stages' bursts); HeldAfterBurst adds this stage's.
	Held           int `json:"held"`
	HeldAfterBurst int `json:"held_after_burst"`
	// The fill: deliveries and entries appended, and how fast.
	FillDeliveries int     `json:"fill_deliveries"`
	FillEntries    int     `json:"fill_entries"`
	FillSeconds    float64 `json:"fill_seconds"`
	FillPerSecond  float64 `json:"fill_deliveries_per_second"`
	// ReadySeconds is from exec to /readyz 200.
	ReadySeconds float64 `json:"ready_seconds"`
	// ServingSeconds is from exec to the gRPC port accepting connections
	// (/readyz does not wait for it).
	ServingSeconds float64 `json:"grpc_serving_seconds"`
	// The burst: publishing it, until the receiver had it all, until the
	// delivery log listed it all SUCCEEDED (each from the start of
	// publishing).
	BurstPublishSeconds   float64 `json:"burst_publish_seconds"`
	BurstDeliveredSeconds float64 `json:"burst_delivered_seconds"`
	BurstListedSeconds    float64 `json:"burst_listed_seconds"`
	// After the burst.
	RSSMB         float64 `json:"rss_mb"`
	HWMMB         float64 `json:"hwm_mb"`
	NATSMB        float64 `json:"nats_mb"`
	NATSMBAtReady float64 `json:"nats_mb_at_ready"`
	HistoryMB     float64 `json:"history_mb"`
	// HWMAfterQueriesMB is VmHWM again once the queries are done.
	HWMAfterQueriesMB float64 `json:"hwm_after_queries_mb"`
	// Queries are by name (see queryNames).
	Queries     map[string]*Latency `json:"queries"`
	StopSeconds float64             `json:"stop_seconds"`
	StopKilled  bool                `json:"stop_killed,omitempty"`
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	rc, err := startReceiver()
	if err != nil {
		return err
	}
	defer rc.close()
	work, err := os.MkdirTemp("", "postback-bench-history-")
	if err != nil {
		return err
	}
	if o.keep {
		progress("work directory %s (kept: -keep)", work)
	} else {
		defer os.RemoveAll(work)
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	report := Report{Date: time.Now().UTC().Format(time.RFC3339), Commit: commit(), Machine: machine(),
		Options: ReportOptions{Stages: o.stages, Samples: o.samples, Burst: o.burst, Seed: o.seed}}
	progress("backends %s, stages %v, %d samples a query, bursts of %d, seed %d, budget %s",
		strings.Join(o.backends, ","), o.stages, o.samples, o.burst, o.seed, o.timeout)
	for _, backend := range o.backends {
		r, err := runBackend(ctx, o, rc, work, backend, rng)
		if len(r.Stages) > 0 {
			report.Backends = append(report.Backends, r)
		}
		if !o.keep {
			os.RemoveAll(filepath.Join(work, backend)) // its history can be gigabytes
		}
		if err != nil {
			// Whatever finished is still written, marked partial by what
			// is missing; the error ends the run.
			report.Elapsed = time.Since(began).Round(time.Second).String()
			if werr := writeJSON(o.out, report); werr != nil {
				progress("warning: %v", werr)
			}
			return fmt.Errorf("%s: %w", backend, err)
		}
	}
	report.Elapsed = time.Since(began).Round(time.Second).String()
	if err := writeJSON(o.out, report); err != nil {
		return err
	}
	md := markdown(report)
	fmt.Print(md)
	if o.markdown != "" {
		f, err := os.OpenFile(o.markdown, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(md)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	progress("done in %s", report.Elapsed)
	return nil
}

func writeJSON(path string, r Report) error {
	if path == "" {
		return nil
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(js, '\n'), 0o644)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-history: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
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
