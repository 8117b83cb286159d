package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// natsUsers are the users of deploy/nats/auth.conf (pkg/broker users.go,
// whose test keeps that file current): the operator's, then one per service.
var natsUsers = []string{"postback", "gateway", "renderer", "sender", "retry", "historian"}

// natsPasswordVar is the variable auth.conf reads a user's password from.
func natsPasswordVar(user string) string {
	return "POSTBACK_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// natsPasswordEnv are stand-in passwords for loading docker-compose.yml.
func natsPasswordEnv() []string {
	var env []string
	for _, u := range natsUsers {
		env = append(env, natsPasswordVar(u)+"=deploycheck-"+u+"-password")
	}
	return env
}

// natsUserIs checks that a NATS URL connects as the service's own user,
// with a password.
func natsUserIs(s, service string) error {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("unparsable URL")
	}
	if u.User == nil || u.User.Username() != service {
		return fmt.Errorf("%s connects as %q, want its own user %q", u.Host, u.User.Username(), service)
	}
	if pw, ok := u.User.Password(); !ok || pw == "" {
		return fmt.Errorf("%s: no password for user %q", u.Host, service)
	}
	return nil
}

// checkNATSConfs checks the shipped node configuration includes the users.
func checkNATSConfs(root string) []error {
	var errs []error
	b, err := os.ReadFile(filepath.Join(root, "deploy", "nats", "compose.conf"))
	if err != nil {
		return []error{err}
	}
	for _, want := range []string{`include "auth.conf"`, "jetstream", "cluster"} {
		if !strings.Contains(string(b), want) {
			errs = append(errs, fmt.Errorf("deploy/nats/compose.conf lacks %s", want))
		}
	}
	auth, err := os.ReadFile(filepath.Join(root, "deploy", "nats", "auth.conf"))
	if err != nil {
		return append(errs, err)
	}
	for _, u := range natsUsers {
		if !strings.Contains(string(auth), "$"+natsPasswordVar(u)) {
			errs = append(errs, fmt.Errorf("deploy/nats/auth.conf has no user %s reading $%s", u, natsPasswordVar(u)))
		}
	}
	return errs
}

// checkNATSChartValues checks charts/nats-values.yaml, the values of the
// official nats/nats chart: a 3-node JetStream cluster whose
// config.merge.authorization has every user of deploy/nats/auth.conf, each
// password "<< $VAR >>" (which the chart writes unquoted: a variable
// nats-server reads from its environment), and each of those variables set
// in container.env from one Secret, key = the user. The users' permissions
// are not compared here: the list is generated from pkg/broker users.go
// (authconf -yaml), and pkg/broker's TestTheChartsNATSValuesCarryTheTableOfUsersGo
// keeps it byte for byte what the table gives, as it keeps auth.conf.
func checkNATSChartValues(root string) []error {
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("charts/nats-values.yaml: %s", fmt.Sprintf(format, a...)))
	}
	b, err := os.ReadFile(filepath.Join(root, "charts", "nats-values.yaml"))
	if err != nil {
		return []error{err}
	}
	var vals map[string]any
	if err := yaml.UnmarshalStrict(b, &vals); err != nil {
		return []error{fmt.Errorf("charts/nats-values.yaml: %v", err)}
	}
	for _, p := range []string{"config.cluster.enabled", "config.jetstream.enabled"} {
		if v, _ := dig(vals, p).(bool); !v {
			fail("%s must be true (a JetStream cluster)", p)
		}
	}
	if r, _ := dig(vals, "config.cluster.replicas").(float64); r < 3 {
		fail("config.cluster.replicas must be at least 3 (R3 streams)")
	}
	if tag, _ := dig(vals, "container.image.tag").(string); !natsTagAtLeast(tag, 2, 12) {
		fail("container.image.tag %q: nats-server >= 2.12 is required (JetStream message schedules)", tag)
	}
	got, _ := dig(vals, "config.merge.authorization").(map[string]any)
	if got == nil {
		fail("config.merge.authorization is missing: the servers would accept anyone (deploy/nats/auth.conf has the users)")
		return errs
	}
	gotUsers := map[string]map[string]any{}
	users, _ := got["users"].([]any)
	for _, u := range users {
		if um, ok := u.(map[string]any); ok {
			name, _ := um["user"].(string)
			gotUsers[name] = um
		}
	}
	for _, u := range natsUsers {
		want := "<< $" + natsPasswordVar(u) + " >>"
		switch g := gotUsers[u]; {
		case g == nil:
			fail("config.merge.authorization.users has no user %s (deploy/nats/auth.conf has)", u)
		case g["password"] != want:
			fail("user %s: password must be %q (the variable auth.conf reads)", u, want)
		}
	}
	for _, name := range sortedKeys(gotUsers) {
		if !slices.Contains(natsUsers, name) {
			fail("user %s is not in deploy/nats/auth.conf", name)
		}
	}
	env, _ := dig(vals, "container.env").(map[string]any)
	secrets := map[string]bool{}
	for _, u := range natsUsers {
		v := natsPasswordVar(u)
		ref, _ := dig(env, v+".valueFrom.secretKeyRef").(map[string]any)
		if ref == nil {
			fail("container.env.%s must come from a Secret (valueFrom.secretKeyRef; auth.conf reads it)", v)
			continue
		}
		name, _ := ref["name"].(string)
		if key, _ := ref["key"].(string); key != u || name == "" {
			fail("container.env.%s: secretKeyRef %s/%s, want key %q of the users' Secret", v, name, key, u)
		}
		secrets[name] = true
	}
	if len(secrets) > 1 {
		fail("the passwords come from several Secrets (%s): one Secret, the one the postback chart reads (nats.auth.existingSecret), holds them all", strings.Join(sortedKeys(secrets), ", "))
	}
	return errs
}

func dig(v any, dotted string) any {
	for _, k := range strings.Split(dotted, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func natsTagAtLeast(tag string, major, minor int) bool {
	m := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(tag)
	if m == nil {
		return false
	}
	maj, min := atoi(m[1]), atoi(m[2])
	return maj > major || (maj == major && min >= minor)
}
