package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// whereabouts describes the deployment's JetStream state after a scenario
// that lost postbacks: what each work stream still holds and what each of
// its consumers has pending, waiting for an ack, or delivered again, and
// how many dead letters there are. A postback missing at the receiver is
// then either still queued (a consumer's pending), held (ack pending),
// waiting on a schedule (SCHEDULES), or dead-lettered: the line says which
// to look at. "" when the server cannot be reached.
// eventsSeq is EVENTS' last sequence (0 when not known): between two
// reads, about how many messages were stored in it (a keeper a second
// beside the events).
func (b *bench) eventsSeq(ctx context.Context) uint64 {
	js, closeNATS, err := b.jetStream("postback-bench-events")
	if err != nil {
		return 0
	}
	defer closeNATS()
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

func (b *bench) whereabouts(ctx context.Context) string {
	js, closeNATS, err := b.jetStream("postback-bench-whereabouts")
	if err != nil {
		return ""
	}
	defer closeNATS()
	var parts []string
	for _, name := range []string{"EVENTS", "DELIVERIES", "SCHEDULES", "HISTORY", "DEADLETTERS"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx)
		if err != nil {
			continue
		}
		part := fmt.Sprintf("%s holds %d", name, info.State.Msgs)
		var busy []string
		for c := range st.ListConsumers(ctx).Info() {
			if c.NumPending == 0 && c.NumAckPending == 0 && c.NumRedelivered == 0 {
				continue
			}
			busy = append(busy, fmt.Sprintf("%s pending %d, ack pending %d, redelivered %d", c.Name, c.NumPending, c.NumAckPending, c.NumRedelivered))
		}
		if len(busy) > 0 {
			part += " (" + strings.Join(busy, "; ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// unfinished describes the account's deliveries that are not SUCCEEDED, by
// status, with a few examples' last answer, and counts them all: a postback
// missing at the receiver that JetStream no longer holds has ended in one
// of them, or was never made (fewer deliveries than events).
func (b *bench) unfinished(ctx context.Context, account string) string {
	var parts []string
	for st := postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING; st <= postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED; st++ {
		if st == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			continue
		}
		res, err := b.deliveries.ListDeliveries(authed(ctx), &postbackv1.ListDeliveriesRequest{AccountId: account, Status: st, PageSize: 500})
		if err != nil {
			return "the deliveries cannot be listed: " + err.Error()
		}
		if len(res.Deliveries) == 0 {
			continue
		}
		count := strconv.Itoa(len(res.Deliveries))
		if res.NextPageToken != "" {
			count += " or more" // one page is enough to place them
		}
		part := fmt.Sprintf("%s %s", count, st)
		for _, d := range res.Deliveries[:min(3, len(res.Deliveries))] {
			part += fmt.Sprintf("; e.g. %s: %d attempts, last %d %q, reason %q", d.Id, d.AttemptCount, d.LastStatusCode, d.LastError, d.Reason)
		}
		parts = append(parts, part)
	}
	// How many deliveries the account has at all: fewer than the events
	// means some event was rendered into none.
	total, token := 0, ""
	for range 1000 {
		res, err := b.deliveries.ListDeliveries(authed(ctx), &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: 500, PageToken: token})
		if err != nil {
			return "the deliveries cannot be listed: " + err.Error()
		}
		total += len(res.Deliveries)
		if token = res.NextPageToken; token == "" {
			break
		}
	}
	parts = append(parts, fmt.Sprintf("%d deliveries in all", total))
	return strings.Join(parts, "; ")
}
