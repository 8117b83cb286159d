package gateway

// OperationsService: the operational events stream and account settings.
//
// WatchOperationalEvents reads the OPERATIONS stream (pkg/opsevents)
// through an ephemeral ordered consumer filtered to what the caller may
// see: an account token its own account (another account is
// PermissionDenied), an operator every account or the one named. The call
// lasts until the caller cancels it or the gateway stops; a watcher that
// reads slowly holds only its own consumer.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/opsevents"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// WatchOperationalEvents streams operational events until the caller
// cancels.
func (s *Server) WatchOperationalEvents(req *postbackv1.WatchOperationalEventsRequest, srv postbackv1.OperationsService_WatchOperationalEventsServer) error {
	// The unary calls' innermost interceptor (requestChecks) does not run
	// for a stream: its checks are made here.
	if e := utf8Mark(req); e != nil {
		return e
	}
	ctx := srv.Context()
	bad := &badRequest{}
	if req.AccountId != "" && !id.ValidAccount(req.AccountId) {
		bad.addf("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", req.AccountId)
	}
	for i, t := range req.Types {
		if !opsevents.ValidType(t) {
			bad.addf(fmt.Sprintf("types[%d]", i), "unknown event type %q (want one of %v)", t, opsevents.Types)
		}
	}
	var since time.Time
	if req.StartTime != nil {
		if err := req.StartTime.CheckValid(); err != nil {
			bad.addf("start_time", "%v", err)
		} else if since = req.StartTime.AsTime(); s.now().Sub(since) > stream.OperationsAge {
			bad.addf("start_time", "at most %s back (events are kept that long)", stream.OperationsAge)
		}
	}
	if err := bad.err(); err != nil {
		return err
	}
	account, err := listScope(ctx, req.AccountId)
	if err != nil {
		return err
	}
	// Headers go out once the consumer is in place, so a client that has
	// them knows it misses no event published after.
	err = opsevents.Watch(ctx, s.js, opsevents.Filter{AccountID: account, Types: req.Types, Since: since},
		func() error { return srv.SendHeader(nil) }, srv.Send)
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
			return boundError(err) // the stream's own error (the client went away)
		}
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	return nil
}

// settingsScope is the account a settings call acts on.
func settingsScope(ctx context.Context, requested string) (string, error) {
	if requested != "" && !id.ValidAccount(requested) {
		return "", invalid("account_id", "want 1-64 characters of A-Z a-z 0-9 _ -, got %q", requested)
	}
	account, err := listScope(ctx, requested)
	if err != nil {
		return "", err
	}
	if account == "" {
		return "", invalid("account_id", "required for an operator")
	}
	return account, nil
}

// GetAccountSettings returns an account's settings.
func (s *Server) GetAccountSettings(ctx context.Context, req *postbackv1.GetAccountSettingsRequest) (*postbackv1.AccountSettings, error) {
	account, err := settingsScope(ctx, req.AccountId)
	if err != nil {
		return nil, err
	}
	st, err := s.accounts.Get(ctx, account)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return st, nil
}

// UpdateAccountSettings replaces an account's settings.
func (s *Server) UpdateAccountSettings(ctx context.Context, req *postbackv1.UpdateAccountSettingsRequest) (*postbackv1.AccountSettings, error) {
	if req.Settings == nil {
		return nil, invalid("settings", "required")
	}
	account, err := settingsScope(ctx, req.Settings.AccountId)
	if err != nil {
		return nil, err
	}
	bad := &badRequest{}
	checkAutoDisable(bad, "settings.auto_disable.", req.Settings.AutoDisable)
	if err := bad.err(); err != nil {
		return nil, err
	}
	st := proto.Clone(req.Settings).(*postbackv1.AccountSettings)
	st.AccountId, st.UpdateTime = account, timestamppb.New(s.now())
	if err := s.accounts.Put(ctx, st); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	s.log.Info("account settings updated", "account_id", account, "caller", caller(ctx))
	return st, nil
}
