package auth

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Identity is who is calling.
type Identity struct {
	// Account is the caller's account id, or OperatorAccount ("*").
	Account string
	// TokenID is the token's fingerprint (8 hex characters of its SHA-256),
	// "" when no tokens are configured.
	TokenID string
	// Anonymous is true when the process has no tokens and accepts every
	// call as an operator (standalone's default, with a loud warning).
	Anonymous bool
}

// Operator reports whether the identity acts on every account.
func (i Identity) Operator() bool { return i.Account == OperatorAccount }

// String names the caller for logs: "operator", "account acct-1" or
// "anonymous operator", with the token fingerprint.
func (i Identity) String() string {
	switch {
	case i.Anonymous:
		return "anonymous operator"
	case i.Operator():
		return "operator (token " + i.TokenID + ")"
	case i.Account == "":
		return "nobody"
	}
	return "account " + i.Account + " (token " + i.TokenID + ")"
}

// LogValue makes an Identity a group of attributes in slog.
func (i Identity) LogValue() slog.Value {
	if i.Anonymous {
		return slog.GroupValue(slog.String("account", OperatorAccount), slog.Bool("anonymous", true))
	}
	return slog.GroupValue(slog.String("account", i.Account), slog.String("token", i.TokenID))
}

// AnonymousOperator is the identity of every call when no tokens are configured.
var AnonymousOperator = Identity{Account: OperatorAccount, Anonymous: true}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller's identity, if ctx carries one.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok && id.Account != ""
}

// CanAccess reports whether the caller may see and change resources of
// account: an operator may, an account token only for its own account, and
// a context without an identity never.
func CanAccess(ctx context.Context, account string) bool {
	id, ok := FromContext(ctx)
	if !ok {
		return false
	}
	return id.Operator() || id.Account == account
}

// Scope is the account filter a list call runs with, given the filter the
// caller asked for ("" = every account it may see). An operator's request
// passes through; an account token is pinned to its own account, and asking
// for another account is PermissionDenied (whether or not it exists). A
// context without an identity is Unauthenticated.
func Scope(ctx context.Context, requested string) (string, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	if id.Operator() {
		return requested, nil
	}
	if requested != "" && requested != id.Account {
		return "", status.Error(codes.PermissionDenied, "account_id: this token acts only on its own account")
	}
	return id.Account, nil
}
