package gateway

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// deadLetterConsumers are the consumers whose dead letters may be asked for.
var deadLetterConsumers = map[string]bool{
	stream.RendererConsumer: true, stream.SenderConsumer: true, stream.SenderRetryConsumer: true, stream.RetryConsumer: true,
}

// maxDeadLetterData is how much of a dead letter's body is returned.
const maxDeadLetterData = 4 << 10

// ListDeadLetters returns a page of the messages no service could process,
// oldest first. Operators only: a dead letter's account, if it names one,
// is not to be trusted.
func (s *Server) ListDeadLetters(ctx context.Context, req *postbackv1.ListDeadLettersRequest) (*postbackv1.ListDeadLettersResponse, error) {
	if !caller(ctx).Operator() {
		return nil, status.Error(codes.PermissionDenied, "dead letters are for operators: use an operator token")
	}
	bad := &badRequest{}
	if req.Consumer != "" && !deadLetterConsumers[req.Consumer] {
		bad.addf("consumer", "want renderer, sender, sender-retries or retry, got %q", req.Consumer)
	}
	size, err := pageSize(req.PageSize)
	bad.addErr(err)
	var after uint64
	if req.PageToken != "" {
		if after, err = strconv.ParseUint(req.PageToken, 10, 64); err != nil {
			bad.addf("page_token", "not a token this call returned: %q", req.PageToken)
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	letters, next, err := stream.ListDeadLetters(ctx, s.js, req.Consumer, after, size)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	out := &postbackv1.ListDeadLettersResponse{}
	for _, d := range letters {
		data := d.Data
		if len(data) > maxDeadLetterData {
			data = data[:maxDeadLetterData]
		}
		out.DeadLetters = append(out.DeadLetters, &postbackv1.DeadLetter{
			Sequence: d.Sequence, Consumer: d.Consumer, Subject: d.Subject, Reason: d.Reason,
			Tries: int32(d.Tries), Time: timestamppb.New(d.Time), Data: data, Size: int32(len(d.Data)),
		})
	}
	if next != 0 {
		out.NextPageToken = strconv.FormatUint(next, 10)
	}
	return out, nil
}
