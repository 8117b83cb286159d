package main

import (
	"fmt"
	"strings"
)

// Targets.
const (
	listTargetMS  = 50.0  // list, filters, page 100: p99
	getTargetMS   = 10.0  // get, attempts: p99
	rssTargetMB   = 300.0 // VmHWM
	readyTargetS  = 5.0
	natsFlatRatio = 0.25 // NATS dir: at most this much above the first stage's…
	natsFlatMB    = 16.0 // …or this many MB, whichever is more
)

const miss = " **(miss)**"

// natsFlat reports whether a stage's JetStream size is flat against the
// first stage's.
func natsFlat(first, x float64) bool {
	return x <= first+max(first*natsFlatRatio, natsFlatMB)
}

func markdown(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Delivery log against retained history — %s — commit %s — %d cores, %s GB, %s (%s)\n\n",
		r.Date[:10], r.Commit, r.Machine.Cores, r.Machine.MemoryGB, r.Machine.Go, r.Elapsed)
	fmt.Fprintf(&b, "`postback-bench-history`: stages %s (deliveries retained, one account, 10 endpoints, over 29 days), "+
		"a burst of %d events through the pipeline at each stage, %d calls of each query after %d warm-up calls, "+
		"every answer checked against what the bench wrote (seed %d). Latencies are p99 in ms over gRPC on loopback.\n\n",
		joinInts(r.Options.Stages), r.Options.Burst, r.Options.Samples, warmups, r.Options.Seed)
	fmt.Fprintf(&b, "Targets: list, filters and page 100 p99 ≤ %.0f ms; get and attempts p99 ≤ %.0f ms; RSS (VmHWM) ≤ %.0f MB; "+
		"ready ≤ %.0f s; NATS storage flat (at most %.0f%% or %.0f MB above the first stage's, whichever is more). "+
		"A cell that misses its target is marked%s.\n", listTargetMS, getTargetMS, rssTargetMB, readyTargetS,
		natsFlatRatio*100, natsFlatMB, miss)
	for _, be := range r.Backends {
		fmt.Fprintf(&b, "\n#### %s\n\n", be.Backend)
		b.WriteString("| stage N | fill rows/s | ready (s) | RSS MB (VmHWM) | NATS dir MB | history MB |")
		for _, q := range queryNames {
			fmt.Fprintf(&b, " %s p99 |", q)
		}
		b.WriteString("\n|---:|---:|---:|---:|---:|---:|")
		b.WriteString(strings.Repeat("---:|", len(queryNames)))
		b.WriteString("\n")
		var firstNATS float64
		for i, st := range be.Stages {
			if i == 0 {
				firstNATS = st.NATSMB
			}
			fillCell := "—"
			if st.FillDeliveries > 0 {
				fillCell = fmt.Sprintf("%.0f", st.FillPerSecond)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %.1f |", st.N, fillCell,
				mark(fmt.Sprintf("%.2f", st.ReadySeconds), st.ReadySeconds > readyTargetS),
				mark(fmt.Sprintf("%.0f", st.HWMMB), st.HWMMB > rssTargetMB),
				mark(fmt.Sprintf("%.1f", st.NATSMB), !natsFlat(firstNATS, st.NATSMB)),
				st.HistoryMB)
			for _, q := range queryNames {
				l := st.Queries[q]
				switch {
				case l == nil:
					b.WriteString(" — |")
				case l.NA != "":
					b.WriteString(" n/a |")
				default:
					target := listTargetMS
					if q == "get" || q == "attempts" {
						target = getTargetMS
					}
					fmt.Fprintf(&b, " %s |", mark(fmt.Sprintf("%.1f", l.P99), l.P99 > target))
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
		for _, st := range be.Stages {
			fmt.Fprintf(&b, "- N=%d: held %d at start, %d after the burst", st.N, st.Held, st.HeldAfterBurst)
			if st.FillDeliveries > 0 {
				fmt.Fprintf(&b, "; fill %d deliveries (%d entries) in %.1f s", st.FillDeliveries, st.FillEntries, st.FillSeconds)
			}
			fmt.Fprintf(&b, "; gRPC accepting %.2f s after exec", st.ServingSeconds)
			fmt.Fprintf(&b, "; burst published in %.2f s, at the receiver after %.2f s, listed SUCCEEDED after %.2f s",
				st.BurstPublishSeconds, st.BurstDeliveredSeconds, st.BurstListedSeconds)
			fmt.Fprintf(&b, "; VmRSS %.0f MB (VmHWM %.0f MB after the queries); NATS dir %.1f MB at ready; stopped in %.2f s",
				st.RSSMB, st.HWMAfterQueriesMB, st.NATSMBAtReady, st.StopSeconds)
			if st.StopKilled {
				b.WriteString(" (killed)")
			}
			b.WriteString(". p50/p99/max ms:")
			for i, q := range queryNames {
				if i > 0 {
					b.WriteString(",")
				}
				l := st.Queries[q]
				switch {
				case l == nil:
					fmt.Fprintf(&b, " %s —", q)
				case l.NA != "":
					fmt.Fprintf(&b, " %s n/a (%s)", q, l.NA)
				default:
					fmt.Fprintf(&b, " %s %.1f/%.1f/%.1f", q, l.P50, l.P99, l.Max)
					if l.Note != "" {
						fmt.Fprintf(&b, " (%s)", l.Note)
					}
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nQueries: ")
	for i, q := range queryNames {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s = %s", q, queryTitles[q])
	}
	b.WriteString(". Fill rows/s counts deliveries (each 1-3 entries: one per attempt) appended straight to the store with the " +
		"standalone stopped; ready is from exec to /readyz 200; RSS is the standalone's VmHWM after the burst; NATS dir is its " +
		"JetStream directory after the burst (a finished delivery's hot record stays there for its grace period, so recent " +
		"bursts count); history MB is the SQLite file and its WAL, or pg_database_size.\n")
	return b.String()
}

func mark(cell string, missed bool) string {
	if missed {
		return cell + miss
	}
	return cell
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
