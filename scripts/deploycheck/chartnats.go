package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// chartNATS is the chart's nats values (defaults coalesced) and whether it
// renders the renderer and the sender: what the rendered Deployments are
// checked against.
type chartNATS struct {
	URL               string `json:"url"`
	ExistingSecret    string `json:"existingSecret"`
	ExistingSecretKey string `json:"existingSecretKey"`
	Auth              struct {
		Enabled        bool   `json:"enabled"`
		ExistingSecret string `json:"existingSecret"`
	} `json:"auth"`
	TLS struct {
		Enabled  bool   `json:"enabled"`
		CASecret string `json:"caSecret"`
		CAKey    string `json:"caKey"`
	} `json:"tls"`
}

// natsOfValues reads the nats block of a value set's effective values.
func natsOfValues(vals map[string]any) (chartNATS, error) {
	var n chartNATS
	b, err := json.Marshal(vals["nats"])
	if err != nil {
		return n, err
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("values: nats: %v", err)
	}
	return n, nil
}

// chartPasswordEnv is the chart's intermediate variable holding a service's
// NATS password (not a POSTBACK_ variable: Postback does not read it).
const chartPasswordEnv = "NATS_PASSWORD"

// jobKeyComponents alone hold POSTBACK_JOB_KEY: the renderer tags jobs, the
// sender verifies them (pkg/delivery auth.go).
var jobKeyComponents = []string{"renderer", "sender"}

// natsPolicy: how each service reaches NATS and who holds the job key.
//
//   - nats.auth (and no nats.existingSecret): every service's POSTBACK_NATS_URL
//     is nats.url with the service's own user (its component name) and
//     $(NATS_PASSWORD) in every URL, NATS_PASSWORD a secretKeyRef into
//     nats.auth.existingSecret with the component as key, defined before the
//     URL (Kubernetes expands only earlier variables); the ConfigMap carries
//     no POSTBACK_NATS_URL (a URL without a user);
//   - nats.existingSecret: the URL is a secretKeyRef into it;
//   - nats.tls: every URL is tls://; with caSecret, POSTBACK_NATS_CA names a
//     file of a read-only Secret volume of caSecret (key caKey);
//   - POSTBACK_JOB_KEY, from a Secret, for the renderer and the sender only,
//     never the same Secret key as POSTBACK_SECRET_KEY.
func (d decoded) natsPolicy(v chartNATS) []error {
	var errs []error
	wantURLs := splitURLs(v.URL)
	for _, dep := range d.deployments {
		ps := dep.Spec.Template.Spec
		if len(ps.Containers) == 0 {
			continue
		}
		c := ps.Containers[0]
		component := dep.Spec.Template.Labels["app.kubernetes.io/component"]
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("Deployment/%s container %s: %s", dep.Name, c.Name, fmt.Sprintf(format, a...)))
		}
		env := map[string]corev1.EnvVar{}
		at := map[string]int{}
		for i, e := range c.Env {
			env[e.Name] = e
			at[e.Name] = i
		}
		cmURL, cmHasURL := "", false
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef == nil {
				continue
			}
			if cm, ok := d.configMaps[ef.ConfigMapRef.Name]; ok {
				if u, ok := cm.Data["POSTBACK_NATS_URL"]; ok {
					cmURL, cmHasURL = u, true
				}
			}
		}
		urlEnv, hasURLEnv := env["POSTBACK_NATS_URL"]
		var urls []string // the URLs the service gets, when not from a Secret
		switch {
		case v.ExistingSecret != "":
			ref := secretRef(urlEnv)
			if !hasURLEnv || ref == nil || ref.Name != v.ExistingSecret || ref.Key != v.ExistingSecretKey {
				fail("POSTBACK_NATS_URL must come from nats.existingSecret %s key %s", v.ExistingSecret, v.ExistingSecretKey)
			}
		case v.Auth.Enabled:
			if cmHasURL {
				fail("the ConfigMap also carries POSTBACK_NATS_URL (without the service's user); with nats.auth only the container's own may exist")
			}
			pw, ok := env[chartPasswordEnv]
			ref := secretRef(pw)
			switch {
			case !ok || ref == nil:
				fail("%s (its NATS password) must come from a Secret (valueFrom.secretKeyRef)", chartPasswordEnv)
			case ref.Name != v.Auth.ExistingSecret || ref.Key != component:
				fail("%s comes from Secret %s key %s, want nats.auth.existingSecret %s key %s (the service's own user)", chartPasswordEnv, ref.Name, ref.Key, v.Auth.ExistingSecret, component)
			}
			if !hasURLEnv || urlEnv.ValueFrom != nil || urlEnv.Value == "" {
				fail("POSTBACK_NATS_URL must be the container's own value, built from nats.url with its user")
				break
			}
			if ok && at[chartPasswordEnv] > at["POSTBACK_NATS_URL"] {
				fail("%s is defined after POSTBACK_NATS_URL: Kubernetes expands $(%s) only from earlier variables", chartPasswordEnv, chartPasswordEnv)
			}
			urls = splitURLs(urlEnv.Value)
			if len(urls) != len(wantURLs) {
				fail("POSTBACK_NATS_URL has %d URLs, nats.url %d", len(urls), len(wantURLs))
				break
			}
			for i, s := range urls {
				u, err := url.Parse(s)
				want, werr := url.Parse(wantURLs[i])
				if err != nil || werr != nil {
					fail("POSTBACK_NATS_URL: URL %d does not parse", i+1)
					continue
				}
				if u.Scheme != want.Scheme || u.Host != want.Host {
					fail("POSTBACK_NATS_URL: URL %d is %s://%s, want nats.url's %s://%s", i+1, u.Scheme, u.Host, want.Scheme, want.Host)
				}
				if u.User == nil || u.User.Username() != component {
					fail("POSTBACK_NATS_URL: URL %d (%s) does not connect as the service's own user %q", i+1, u.Host, component)
				} else if p, _ := u.User.Password(); p != "$("+chartPasswordEnv+")" {
					// Never print what is there: it could be a password.
					fail("POSTBACK_NATS_URL: URL %d (%s): the password must be $(%s), from the Secret", i+1, u.Host, chartPasswordEnv)
				}
			}
		default:
			if !cmHasURL || hasURLEnv {
				fail("with nats.auth.enabled false POSTBACK_NATS_URL comes from the ConfigMap (nats.url)")
			}
			urls = splitURLs(cmURL)
		}
		if v.TLS.Enabled {
			for i, s := range urls {
				if !strings.HasPrefix(s, "tls://") {
					fail("nats.tls.enabled, but URL %d of POSTBACK_NATS_URL is not tls://", i+1)
				}
			}
		}
		natsCAPolicy(dep, c, env, v, fail)
		jk, hasJobKey := env["POSTBACK_JOB_KEY"]
		if want := slices.Contains(jobKeyComponents, component); hasJobKey != want {
			if want {
				fail("POSTBACK_JOB_KEY is not set (the %s refuses to start without the job key)", component)
			} else {
				fail("POSTBACK_JOB_KEY is set: only the renderer and the sender may hold the job key")
			}
		}
		if hasJobKey {
			ref := secretRef(jk)
			if ref == nil {
				fail("POSTBACK_JOB_KEY must come from a Secret (valueFrom.secretKeyRef)")
			} else if sk := secretRef(env["POSTBACK_SECRET_KEY"]); sk != nil && sk.Name == ref.Name && sk.Key == ref.Key {
				fail("POSTBACK_JOB_KEY and POSTBACK_SECRET_KEY come from the same Secret key (%s/%s): they must be different keys", ref.Name, ref.Key)
			}
		}
	}
	return errs
}

// natsCAPolicy: with nats.tls.caSecret, POSTBACK_NATS_CA is a file of a
// read-only mount of that Secret; otherwise it is not set.
func natsCAPolicy(dep *appsv1.Deployment, c corev1.Container, env map[string]corev1.EnvVar, v chartNATS, fail func(string, ...any)) {
	ca, hasCA := env["POSTBACK_NATS_CA"]
	if !v.TLS.Enabled || v.TLS.CASecret == "" {
		if hasCA {
			fail("POSTBACK_NATS_CA is set without nats.tls.enabled and nats.tls.caSecret")
		}
		return
	}
	if !hasCA || ca.ValueFrom != nil || !path.IsAbs(ca.Value) {
		fail("nats.tls.caSecret is set, but POSTBACK_NATS_CA is not the path of its mounted file")
		return
	}
	dir, file := path.Split(ca.Value)
	dir = path.Clean(dir)
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == dir && m.SubPath == "" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		fail("POSTBACK_NATS_CA %s: no volume is mounted at %s", ca.Value, dir)
		return
	}
	if !mount.ReadOnly {
		fail("the NATS CA volume %s is mounted read-write", mount.Name)
	}
	for _, vol := range dep.Spec.Template.Spec.Volumes {
		if vol.Name != mount.Name {
			continue
		}
		if vol.Secret == nil || vol.Secret.SecretName != v.TLS.CASecret {
			fail("volume %s (POSTBACK_NATS_CA) is not Secret %s (nats.tls.caSecret)", vol.Name, v.TLS.CASecret)
			return
		}
		key := file // without items, each key is a file
		if len(vol.Secret.Items) > 0 {
			key = ""
			for _, it := range vol.Secret.Items {
				if it.Path == file {
					key = it.Key
				}
			}
		}
		if key != v.TLS.CAKey {
			fail("POSTBACK_NATS_CA %s is key %q of Secret %s, want nats.tls.caKey %q", ca.Value, key, v.TLS.CASecret, v.TLS.CAKey)
		}
	}
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
