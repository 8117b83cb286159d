package gateway

import (
	"context"

	"github.com/postback-dev/postback/pkg/auth"
)

// The tenancy rules every handler applies (docs/architecture.md, decision 13). The caller's
// identity is put in the context by the auth interceptors Run installs
// (Config.Auth); a context without one (a handler called without them) may
// act on nothing, so a wiring mistake fails closed.

// visible reports whether the caller may see (and act on) resources of
// account: an operator sees every account, an account token only its own.
// A resource that is not visible is answered exactly as one that does not
// exist (NotFound), so a token never learns another account's ids.
func visible(ctx context.Context, account string) bool { return auth.CanAccess(ctx, account) }

// listScope is the account filter a list call runs with: an account token is
// pinned to its own account ("" = its own; another account is
// PermissionDenied); an operator's filter passes through ("" = all). The
// error is a gRPC status, ready to return.
func listScope(ctx context.Context, requested string) (string, error) {
	return auth.Scope(ctx, requested)
}

// caller is the identity for log lines (never a token).
func caller(ctx context.Context) auth.Identity {
	id, _ := auth.FromContext(ctx)
	return id
}
