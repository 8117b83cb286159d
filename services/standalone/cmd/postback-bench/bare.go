package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/render"
)

// The bare pipeline is the second reference of a run, the one the
// benchmark issue gives "for scale": an in-process publisher → JetStream
// (file storage, an embedded nats-server) → a renderer (decode the event's
// JSON, render the burst's template, publish the job, ack) → a sender
// (decode the job, send it with net/http, ack), with none of the product's
// features: no delivery records or claims, no limits, attempts, retries,
// auth, validation or telemetry. It runs inside the bench process, so its
// CPU seconds include the receiver's. Postback's burst is reported as a
// ratio to it too: how much the features cost, measured on this machine in
// the same run.

// BareResult is the bare pipeline's figure.
type BareResult struct {
	Events          int     `json:"events"`
	Delivered       int     `json:"delivered"`
	DeliveredPerSec float64 `json:"delivered_per_second"`
	RatioToRaw      float64 `json:"ratio_to_raw"` // set by the caller against the raw reference
	CPUSec          float64 `json:"cpu_seconds_bench_process"`
}

// bareJob is what the bare renderer hands the bare sender.
type bareJob struct {
	ID          string `json:"id"`
	Method      string `json:"method"`
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Body        []byte `json:"body"`
}

const (
	bareRenderers = 64  // renderer workers
	bareSenders   = 256 // sender workers, as Postback's sender
)

func (b *bench) bare(ctx context.Context, dir, tag string, n int) (BareResult, error) {
	srv, err := broker.Start(broker.Options{Port: -1, DataDir: dir})
	if err != nil {
		return BareResult{}, err
	}
	defer srv.Stop()
	// One in-process connection, as this reference has always had (the
	// product connects each service over loopback TCP): the yardstick stays
	// what earlier rows of docs/benchmarks.md measured.
	nc, err := nats.Connect("", nats.InProcessServer(srv.Server), nats.Name("bare"))
	if err != nil {
		return BareResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return BareResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, s := range []string{"BARE_EVENTS", "BARE_JOBS"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{s + ".>"},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
			return BareResult{}, fmt.Errorf("bare stream %s: %w", s, err)
		}
	}
	compiled, err := render.Compile(render.Spec{EventType: "action_lifecycle", URL: "http://" + b.rc.addr + "/r/" + tag + "?t={Text1}",
		Method: render.MethodPost, BodyTemplate: bodyTemplate})
	if err != nil {
		return BareResult{}, err
	}
	stopRenderer, err := bareWorkers(ctx, js, "BARE_EVENTS", bareRenderers, func(m jetstream.Msg) error {
		var ev map[string]any
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			return err
		}
		req, err := compiled.Render(ev)
		if err != nil {
			return err
		}
		job, _ := json.Marshal(bareJob{ID: m.Headers().Get("Bare-Id"), Method: req.Method, URL: req.URL, ContentType: req.ContentType, Body: req.Body})
		_, err = js.Publish(ctx, "BARE_JOBS.x", job)
		return err
	})
	if err != nil {
		return BareResult{}, err
	}
	defer stopRenderer()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: bareSenders}}
	stopSender, err := bareWorkers(ctx, js, "BARE_JOBS", bareSenders, func(m jetstream.Msg) error {
		var job bareJob
		if err := json.Unmarshal(m.Data(), &job); err != nil {
			return err
		}
		hr, _ := http.NewRequestWithContext(ctx, job.Method, job.URL, bytes.NewReader(job.Body))
		hr.Header.Set("Content-Type", job.ContentType)
		hr.Header.Set("X-Raw-Id", job.ID)
		resp, err := client.Do(hr)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	if err != nil {
		return BareResult{}, err
	}
	defer stopSender()

	t := b.rc.tally(tag)
	cpu0 := selfCPU()
	start := time.Now()
	for i := range n {
		body, _ := json.Marshal(eventData(time.Now()))
		m := nats.NewMsg("BARE_EVENTS.action_lifecycle")
		m.Data = body
		m.Header.Set("Bare-Id", strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(m); err != nil {
			return BareResult{}, fmt.Errorf("bare publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return BareResult{}, ctx.Err()
	}
	for {
		if got, _, _ := t.counts(); got >= n {
			break
		}
		select {
		case <-t.arrived:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			got, _, _ := t.counts()
			return BareResult{}, fmt.Errorf("bare pipeline: %d of %d delivered: %w", got, n, ctx.Err())
		}
	}
	t.mu.Lock()
	took := t.last.Sub(start)
	t.mu.Unlock()
	got, _, _ := t.counts()
	return BareResult{Events: n, Delivered: got, DeliveredPerSec: float64(got) / took.Seconds(), CPUSec: (selfCPU() - cpu0).Seconds()}, nil
}

// bareWorkers consumes a stream with a durable pull consumer and handles
// each message on one of workers goroutines: ack on success, nak on error.
func bareWorkers(ctx context.Context, js jetstream.JetStream, streamName string, workers int, handle func(jetstream.Msg) error) (stop func(), err error) {
	c, err := js.CreateOrUpdateConsumer(ctx, streamName, jetstream.ConsumerConfig{Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 4 * workers})
	if err != nil {
		return nil, fmt.Errorf("bare consumer %s: %w", streamName, err)
	}
	msgs := make(chan jetstream.Msg, workers)
	cc, err := c.Consume(func(m jetstream.Msg) { msgs <- m })
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				if err := handle(m); err != nil {
					_ = m.Nak()
					continue
				}
				_ = m.Ack()
			}
		}()
	}
	return func() {
		cc.Stop()
		<-cc.Closed() // no callback is running: msgs can close
		close(msgs)
		wg.Wait()
	}, nil
}
