package stream

import (
	"log/slog"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// ClientOptions are the options every Postback connection to NATS uses: its
// name, reconnecting for ever, and the errors the server sends
// asynchronously (a permissions violation above all: a publish the
// server refuses is otherwise silent) logged through log.
func ClientOptions(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if log == nil {
				return
			}
			attrs := []any{"connection", name, "error", err}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			log.Error("NATS reported an error", attrs...)
		}),
	}
}

// RedactURLs is a NATS server list (comma-separated URLs) as it may be
// logged or put in an error: every password, and every token (a user
// without a password), replaced by "xxxxx".
func RedactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User != nil:
			if _, hasPassword := u.User.Password(); !hasPassword {
				u.User = url.User("xxxxx") // a bare user is a token: hide it all
			}
			parts[i] = u.Redacted()
		default:
			parts[i] = p
		}
	}
	return strings.Join(parts, ",")
}
