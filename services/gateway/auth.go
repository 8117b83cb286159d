package gateway

import "context"

// visible reports whether the caller may see resources of account.
// Placeholder until authentication lands: every caller sees every account.
func visible(ctx context.Context, account string) bool { return true }

// listScope is the account filter a list call runs with: an account token is
// pinned to its own account. Placeholder until authentication lands.
func listScope(ctx context.Context, requested string) (string, error) { return requested, nil }
