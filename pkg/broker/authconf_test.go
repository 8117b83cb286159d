package broker

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// shippedAuthConf is the authorization block run-cluster, docker-compose
// and the chart's NATS values include.
const shippedAuthConf = "../../deploy/nats/auth.conf"

func TestTheShippedAuthConfIsTheTableOfUsersGo(t *testing.T) {
	b, err := os.ReadFile(shippedAuthConf)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != AuthConf() {
		t.Fatalf("%s is stale: run `go run ./pkg/broker/cmd/authconf > deploy/nats/auth.conf` (from the repo root, in ./pkg: go run ./broker/cmd/authconf > ../deploy/nats/auth.conf)", shippedAuthConf)
	}
}

// nats-server itself reads the shipped file into the users and permissions
// the embedded server gets, passwords from the environment.
func TestNATSServerReadsTheShippedAuthConfAsTheEmbeddedServersUsers(t *testing.T) {
	for _, u := range Users {
		t.Setenv(PasswordVar(u), "pw-of-"+u)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "node.conf")
	shipped, err := os.ReadFile(shippedAuthConf)
	if err != nil {
		t.Fatal(err)
	}
	// As deployed: the file next to the node's configuration, included by
	// a path relative to it.
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), shipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\ninclude \"auth.conf\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Users) != len(Users) {
		t.Fatalf("%d users, want %d", len(opts.Users), len(Users))
	}
	for i, got := range opts.Users {
		if got.Username != Users[i] || got.Password != "pw-of-"+Users[i] {
			t.Fatalf("user %d: %s with password %q, want %s with its variable's value", i, got.Username, got.Password, Users[i])
		}
		want := Permissions(got.Username)
		if want == nil {
			if got.Permissions != nil {
				t.Fatalf("%s has permissions %+v, want none (unrestricted)", got.Username, got.Permissions)
			}
			continue
		}
		if got.Permissions == nil || !reflect.DeepEqual(got.Permissions.Publish.Allow, want.Publish.Allow) ||
			!reflect.DeepEqual(got.Permissions.Subscribe.Allow, want.Subscribe.Allow) {
			t.Fatalf("%s: permissions %+v, want %+v", got.Username, got.Permissions, want)
		}
	}
}

// docker-compose's node configuration, as nats-server reads it: JetStream,
// the cluster, and the shipped users.
func TestTheComposeNodeConfigurationLocksTheBroker(t *testing.T) {
	for _, u := range Users {
		t.Setenv(PasswordVar(u), "pw-of-"+u)
	}
	dir := t.TempDir()
	for _, f := range []string{"compose.conf", "auth.conf"} {
		b, err := os.ReadFile(filepath.Join("../../deploy/nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "compose.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.Cluster.Name != "postback" || len(opts.Routes) != 3 {
		t.Fatalf("JetStream %v, cluster %q with %d routes; want JetStream on, cluster postback, 3 routes", opts.JetStream, opts.Cluster.Name, len(opts.Routes))
	}
	if len(opts.Users) != len(Users) || opts.NoAuthUser != "" {
		t.Fatalf("%d users (no_auth_user %q), want the %d of users.go and no unauthenticated user", len(opts.Users), opts.NoAuthUser, len(Users))
	}
}

// The chart's NATS values carry the same users (deploy-check also compares
// them with auth.conf after YAML parsing).
func TestTheChartsNATSValuesCarryTheTableOfUsersGo(t *testing.T) {
	b, err := os.ReadFile("../../charts/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "      users:\n"+AuthYAML()+"container:\n") {
		t.Fatal("charts/nats-values.yaml's users are stale: replace the list under config.merge.authorization.users with `go run ./pkg/broker/cmd/authconf -yaml`")
	}
}
