package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
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
// config.merge.authorization is deploy/nats/auth.conf's (the same users
// with the same permissions, each password "<< $VAR >>", which the chart
// writes unquoted, a variable nats-server reads from its environment), and
// each of those variables set in container.env from a Secret, key = the user.
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
	authConf, err := os.ReadFile(filepath.Join(root, "deploy", "nats", "auth.conf"))
	if err != nil {
		return []error{err}
	}
	conf, err := parseNATSConf(string(authConf))
	if err != nil {
		return []error{fmt.Errorf("deploy/nats/auth.conf: %v", err)}
	}
	want, _ := chartVar(conf["authorization"]).(map[string]any)
	if want == nil {
		return []error{fmt.Errorf("deploy/nats/auth.conf: no authorization block")}
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
	byName := func(m map[string]any) map[string]any {
		out := map[string]any{}
		users, _ := m["users"].([]any)
		for _, u := range users {
			if um, ok := u.(map[string]any); ok {
				name, _ := um["user"].(string)
				out[name] = um
			}
		}
		return out
	}
	wantUsers, gotUsers := byName(want), byName(got)
	for _, u := range natsUsers {
		if wantUsers[u] == nil {
			errs = append(errs, fmt.Errorf("deploy/nats/auth.conf has no user %s", u))
		}
	}
	for _, name := range sortedKeys(wantUsers) {
		switch g := gotUsers[name]; {
		case g == nil:
			fail("config.merge.authorization.users has no user %s (deploy/nats/auth.conf has)", name)
		case !reflect.DeepEqual(g, wantUsers[name]):
			fail("user %s differs from deploy/nats/auth.conf's (password %q and the same permissions expected)", name, chartVar(natsConfVar(natsPasswordVar(name))))
		}
	}
	for _, name := range sortedKeys(gotUsers) {
		if wantUsers[name] == nil {
			fail("user %s is not in deploy/nats/auth.conf", name)
		}
	}
	if len(errs) == 0 && !reflect.DeepEqual(got, want) {
		fail("config.merge.authorization differs from deploy/nats/auth.conf's authorization block beyond its users")
	}
	env, _ := dig(vals, "container.env").(map[string]any)
	secrets := map[string]bool{}
	for _, u := range sortedKeys(wantUsers) {
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

// natsConfVar is a variable reference of a nats-server configuration.
type natsConfVar string

// chartVar turns auth.conf's variable references into what the chart's
// values spell them as ("<< $VAR >>"), in a parsed configuration.
func chartVar(v any) any {
	switch v := v.(type) {
	case natsConfVar:
		return "<< $" + string(v) + " >>"
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = chartVar(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = chartVar(x)
		}
		return out
	}
	return v
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

// parseNATSConf parses the subset of the nats-server configuration format
// that deploy/nats/auth.conf uses: maps ({ }), arrays ([ ]), key: value or
// key = value, quoted and bare strings, $VARIABLE references, # and //
// comments, commas and semicolons as separators. Values stay strings.
func parseNATSConf(s string) (map[string]any, error) {
	p := &confParser{s: s}
	m, err := p.mapBody(0)
	if err != nil {
		return nil, fmt.Errorf("line %d: %v", strings.Count(s[:p.i], "\n")+1, err)
	}
	return m, nil
}

type confParser struct {
	s string
	i int
}

func (p *confParser) skip() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ';':
			p.i++
		case c == '#' || strings.HasPrefix(p.s[p.i:], "//"):
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

// mapBody reads key-value pairs up to end (0: the end of the text).
func (p *confParser) mapBody(end byte) (map[string]any, error) {
	m := map[string]any{}
	for {
		p.skip()
		if p.i >= len(p.s) {
			if end != 0 {
				return nil, fmt.Errorf("unterminated map")
			}
			return m, nil
		}
		if p.s[p.i] == end {
			p.i++
			return m, nil
		}
		var key string
		if p.s[p.i] == '"' {
			k, err := p.quoted()
			if err != nil {
				return nil, err
			}
			key = k
		} else {
			start := p.i
			for p.i < len(p.s) && !strings.ContainsRune(" \t\r\n:={", rune(p.s[p.i])) {
				p.i++
			}
			key = p.s[start:p.i]
		}
		if key == "" {
			return nil, fmt.Errorf("expected a key at %q", p.s[p.i:min(p.i+20, len(p.s))])
		}
		for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
			p.i++
		}
		if p.i < len(p.s) && (p.s[p.i] == ':' || p.s[p.i] == '=') {
			p.i++
		}
		for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
			p.i++
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("key %q twice", key)
		}
		m[key] = v
	}
}

func (p *confParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("expected a value")
	}
	switch p.s[p.i] {
	case '{':
		p.i++
		return p.mapBody('}')
	case '[':
		p.i++
		var arr []any
		for {
			p.skip()
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unterminated array")
			}
			if p.s[p.i] == ']' {
				p.i++
				if arr == nil {
					arr = []any{}
				}
				return arr, nil
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
	case '"':
		return p.quoted()
	}
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(" \t\r\n,;]}#", rune(p.s[p.i])) {
		p.i++
	}
	tok := p.s[start:p.i]
	if strings.HasPrefix(tok, "$") {
		return natsConfVar(tok[1:]), nil
	}
	return tok, nil
}

func (p *confParser) quoted() (string, error) {
	p.i++ // the opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.i < len(p.s) {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unterminated string")
}
