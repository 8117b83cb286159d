package broker

// Who may do what on the broker.
//
// Every Postback service connects to NATS as its own user, and each user may
// publish only to the subjects its service writes. The table below is the one
// statement of those permissions: the embedded server (standalone) is built
// from it, deploy/nats/auth.conf (run-cluster, docker-compose) is generated
// from it and kept equal by a test, and `make deploy-check` compares the
// chart's NATS values with that file, so a permission cannot drift between
// the shapes.
//
// What the permissions buy. A user's publish permission is what it may store
// in a stream: JetStream stores what is published on a stream's subjects, so
// "may publish deliveries.>" is "may queue a first send". Only the gateway
// accepts events (events.>, idem.>). Endpoint configuration
// ($KV.postback-endpoints.>) is written by the gateway and by the history
// writer, which turns an endpoint off when auto-disable says so: an
// endpoint's secrets are sealed bound to its account, id and URL
// (pkg/endpoint Binding), so a user that can write the bucket without the
// secret key cannot point them elsewhere. The history writer also publishes
// operational events (operations.>, and events.operational_event.> only).
// Only the renderer and the gateway (a manual retry or replay) may queue a
// first send; the history writer can queue no job at all. No service user
// may delete or purge a stream, or delete a message from one, except the one
// purge the schedules need (a delivery's pending schedule, SCHEDULES). Every
// service may read what it needs through the
// JetStream API and receive replies on _INBOX.>.
//
// What they do not buy. Each service ensures the stream layout at start-up
// (so no service depends on another having started), which needs the
// JetStream API's stream create and update calls: a stolen service password
// can therefore still change a stream's configuration. And any user that may
// queue a job (the renderer, the gateway, the sender's and the retry
// service's schedules) could queue a forged one. That is why the sender does
// not trust a job for where it sends an endpoint's secrets: a job carries a
// MAC by a key that is never on the broker (pkg/delivery auth.go), and the
// sender sends an endpoint's secret headers and signature only with a job
// whose MAC verifies. docs/security.md has the whole threat model.
//
// The admin user ("postback") has no restrictions: standalone uses it to
// ensure the layout and for its readiness probe, and an operator uses it for
// the nats CLI. Its password, like every service's, is generated into the
// data dir (credentials.go); in production they come from Secrets.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// AdminUser is the unrestricted user.
const AdminUser = "postback"

// Service users, one per service (named as the service's binary is, without
// the postback- prefix).
const (
	GatewayUser   = "gateway"
	RendererUser  = "renderer"
	SenderUser    = "sender"
	RetryUser     = "retry"
	HistorianUser = "historian"
)

// Users lists every user: the admin first, then the service users.
var Users = []string{AdminUser, GatewayUser, RendererUser, SenderUser, RetryUser, HistorianUser}

// jetStreamAPI is what every service user may call: the API's reads, stream
// create and update (every service ensures the layout), every consumer call
// (durables, and the ordered consumers of KV watches and listings), message
// gets, acks and flow control. Not: stream delete, purge (but for the
// schedules' one, granted where needed) and message delete.
var jetStreamAPI = []string{
	"$JS.API.INFO",
	"$JS.API.STREAM.NAMES",
	"$JS.API.STREAM.LIST",
	"$JS.API.STREAM.INFO.*",
	"$JS.API.STREAM.CREATE.*",
	"$JS.API.STREAM.UPDATE.*",
	"$JS.API.STREAM.MSG.GET.*",
	"$JS.API.DIRECT.GET.>",
	"$JS.API.CONSUMER.>",
	"$JS.ACK.>",
	"$JS.FC.>",
}

// purgeSchedules lets a service drop a delivery's pending schedule (a
// subject purge on SCHEDULES).
const purgeSchedules = "$JS.API.STREAM.PURGE.SCHEDULES"

// Keeper subjects: each service that consumes a work stream publishes its
// keeper message (pkg/stream keep.go).
const keep = "keep.>"

// publish is each service user's publish allow-list beyond jetStreamAPI.
var publish = map[string][]string{
	GatewayUser: {
		"events.>", "idem.>", // accepted events and their idempotency markers
		"$KV.postback-endpoints.>",       // endpoint configuration
		"$KV.postback-deliveries.>",      // delivery records (retry, replay, cancel)
		"$KV.postback-accounts.>",        // account settings (the auto-disable default)
		"$KV.postback-endpoint-health.>", // a re-enabled endpoint's fresh allowance
		"deliveries.>",                   // a manual retry or a replay queues a send
		"schedules.>", purgeSchedules,
		"history.>", "attempts.>", "deadletter.>", keep,
	},
	RendererUser: {
		"deliveries.>",                 // first sends
		"$KV.postback-deliveries.>",    // records of deliveries that did not render
		"$KV.postback-recent-events.>", // the sample of recent events (pkg/recent)
		"history.>", "deadletter.>", keep,
	},
	SenderUser: {
		"$KV.postback-deliveries.>",
		"failed.>",                    // failed attempts, for the retry service
		"schedules.>", purgeSchedules, // waiting for an endpoint's limits
		"history.>", "attempts.>", "deadletter.>", keep,
	},
	RetryUser: {
		"$KV.postback-deliveries.>",
		"schedules.>", purgeSchedules, // the retry schedule
		"history.>", "attempts.>", "deadletter.>", keep,
	},
	HistorianUser: {
		"$KV.postback-endpoint-health.>", // endpoint health, counted from each attempt
		"$KV.postback-endpoints.>",       // auto-disable turns an endpoint off (secrets stay bound to its URL)
		"operations.>",                   // operational events
		"events.operational_event.>",     // ... and the same for the accounts' operational endpoints
		"deadletter.>", keep,
	},
}

// Publish returns the subjects user may publish to (nil for the admin, who
// may publish anywhere), sorted as the table has them: the JetStream API
// first, then the service's own subjects.
func Publish(user string) []string {
	own, ok := publish[user]
	if !ok {
		return nil
	}
	return append(slices.Clone(jetStreamAPI), own...)
}

// Subscribe returns the subjects user may subscribe to (nil for the admin):
// replies only. Every service reads its streams through pull consumers,
// whose messages come as replies to its _INBOX.
func Subscribe(user string) []string {
	if _, ok := publish[user]; !ok {
		return nil
	}
	return []string{"_INBOX.>"}
}

// Permissions returns user's permissions for the embedded server (nil for
// the admin: no restrictions).
func Permissions(user string) *server.Permissions {
	pub := Publish(user)
	if pub == nil {
		return nil
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: Subscribe(user)},
	}
}

// PasswordVar is the environment variable that holds user's password in the
// shipped nats-server configuration (deploy/nats/auth.conf): nats-server
// reads $NAME from its environment.
func PasswordVar(user string) string {
	return "POSTBACK_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// AuthConf renders the authorization block of a nats-server configuration
// for every user of Users, each password read from the environment
// variable PasswordVar names. deploy/nats/auth.conf is this text (a test
// keeps it so); run-cluster, docker-compose and the chart include it.
func AuthConf() string {
	var b strings.Builder
	b.WriteString("# Postback's NATS users and their permissions. Generated from pkg/broker users.go\n")
	b.WriteString("# (go run ./pkg/broker/cmd/authconf > deploy/nats/auth.conf); a test fails when it is stale.\n")
	b.WriteString("# Each password comes from the server's environment.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range Users {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n", u, PasswordVar(u))
		if pub := Publish(u); pub != nil {
			b.WriteString("      permissions: {\n        publish: { allow: [\n")
			for _, s := range pub {
				fmt.Fprintf(&b, "          %q\n", s)
			}
			b.WriteString("        ] }\n        subscribe: { allow: [")
			for i, s := range Subscribe(u) {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%q", s)
			}
			b.WriteString("] }\n      }\n")
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// AuthYAML renders the same users as AuthConf for the official NATS chart's
// config.merge.authorization.users (charts/nats-values.yaml), indented to
// sit under "      users:", each password the chart's
// "<< $POSTBACK_NATS_<USER>_PASSWORD >>" reference.
func AuthYAML() string {
	var b strings.Builder
	for _, u := range Users {
		fmt.Fprintf(&b, "        - user: %s\n          password: \"<< $%s >>\"\n", u, PasswordVar(u))
		if pub := Publish(u); pub != nil {
			b.WriteString("          permissions:\n            publish:\n              allow:\n")
			for _, s := range pub {
				fmt.Fprintf(&b, "                - %q\n", s)
			}
			b.WriteString("            subscribe:\n              allow:\n")
			for _, s := range Subscribe(u) {
				fmt.Fprintf(&b, "                - %q\n", s)
			}
		}
	}
	return b.String()
}
