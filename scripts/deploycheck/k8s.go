package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// strictDecoder decodes YAML into the typed objects of client-go's scheme and
// fails on unknown or duplicate fields and on wrong types.
var strictDecoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// serviceMonitor is the subset of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart uses; decoded strictly, so a field
// outside it (a typo) fails.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decoded is the rendered release as typed objects.
type decoded struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
	monitors    []*serviceMonitor
	accounts    map[string]bool
	nats        chartNATS // the value set's nats values
}

func checkManifests(docs []document, vals map[string]any, known map[string]bool, verbose bool) []error {
	var errs []error
	fail := func(src string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", src, fmt.Sprintf(format, a...)))
	}
	d := decoded{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, accounts: map[string]bool{}}
	n, err := natsOfValues(vals)
	if err != nil {
		return []error{err}
	}
	d.nats = n
	seen := map[string]string{}
	var kinds []string
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc.data, &tm); err != nil || tm.Kind == "" || tm.APIVersion == "" {
			fail(doc.source, "no apiVersion/kind (%v)", err)
			continue
		}
		var meta metav1.ObjectMeta
		var obj runtime.Object
		if tm.APIVersion == "monitoring.coreos.com/v1" && tm.Kind == "ServiceMonitor" {
			sm := &serviceMonitor{}
			if err := yaml.UnmarshalStrict(doc.data, sm); err != nil {
				fail(doc.source, "ServiceMonitor: %v", err)
				continue
			}
			if len(sm.Spec.Endpoints) == 0 || len(sm.Spec.Selector.MatchLabels) == 0 {
				fail(doc.source, "ServiceMonitor needs a selector and endpoints")
			}
			d.monitors = append(d.monitors, sm)
			meta = sm.ObjectMeta
		} else if tm.APIVersion == "monitoring.coreos.com/v1" && tm.Kind == "PrometheusRule" {
			pr := &prometheusRule{}
			if err := yaml.UnmarshalStrict(doc.data, pr); err != nil {
				fail(doc.source, "PrometheusRule: %v", err)
				continue
			}
			errs = append(errs, checkPrometheusRule(doc.source, pr)...)
			meta = pr.ObjectMeta
		} else {
			o, gvk, err := strictDecoder.Decode(doc.data, nil, nil)
			if err != nil {
				fail(doc.source, "%s %s: %v", tm.APIVersion, tm.Kind, err)
				continue
			}
			obj = o
			acc, err := metaOf(o)
			if err != nil {
				fail(doc.source, "%v", err)
				continue
			}
			meta = acc
			tm.Kind = gvk.Kind
		}
		kinds = append(kinds, tm.Kind+"/"+meta.Name)
		key := tm.Kind + "/" + meta.Name
		if prev, dup := seen[key]; dup {
			fail(doc.source, "%s rendered twice (also in %s)", key, prev)
		}
		seen[key] = doc.source
		for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
			fail(doc.source, "metadata.name %q: %s", meta.Name, msg)
		}
		if meta.Namespace != "" {
			fail(doc.source, "metadata.namespace is set (%q): let helm -n place it", meta.Namespace)
		}
		errs = append(errs, checkLabels(doc.source, meta.Labels)...)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			d.deployments = append(d.deployments, o)
		case *corev1.Service:
			d.services = append(d.services, o)
		case *corev1.ConfigMap:
			d.configMaps[o.Name] = o
		case *corev1.Secret:
			d.secrets[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			d.hpas = append(d.hpas, o)
		case *policyv1.PodDisruptionBudget:
			d.pdbs = append(d.pdbs, o)
		case *networkingv1.NetworkPolicy:
			d.netpols = append(d.netpols, o)
		case *corev1.ServiceAccount:
			d.accounts[o.Name] = true
		case nil:
		default:
			fail(doc.source, "unexpected kind %s (extend deploycheck if it is intended)", tm.Kind)
		}
	}
	if verbose {
		fmt.Printf("        rendered: %s\n", strings.Join(kinds, " "))
	}
	if len(errs) > 0 {
		// The cross-checks would only repeat the missing objects.
		return append(errs, fmt.Errorf("(policy and cross-reference checks skipped until the documents decode)"))
	}
	return d.policy(known)
}

func metaOf(o runtime.Object) (metav1.ObjectMeta, error) {
	type hasMeta interface{ GetObjectMeta() metav1.Object }
	m, ok := o.(hasMeta)
	if !ok {
		return metav1.ObjectMeta{}, fmt.Errorf("%T has no metadata", o)
	}
	om := m.GetObjectMeta()
	return metav1.ObjectMeta{Name: om.GetName(), Namespace: om.GetNamespace(), Labels: om.GetLabels()}, nil
}

func checkLabels(src string, l map[string]string) []error {
	var errs []error
	for k, v := range l {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("%s: label key %q: %s", src, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("%s: label %s value %q: %s", src, k, v, msg))
		}
	}
	return errs
}

// policy checks what the schemas cannot: the chart's own rules and that the
// objects refer to each other correctly.
func (d decoded) policy(known map[string]bool) []error {
	var errs []error
	fail := func(kind, name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s/%s: %s", kind, name, fmt.Sprintf(format, a...)))
	}
	if len(d.deployments) == 0 {
		fail("chart", "-", "no Deployment rendered")
	}
	hpaTargets := map[string]bool{}
	for _, h := range d.hpas {
		hpaTargets[h.Spec.ScaleTargetRef.Name] = true
	}
	deploymentByName := map[string]*appsv1.Deployment{}
	for _, dep := range d.deployments {
		deploymentByName[dep.Name] = dep
		n := dep.Name
		ps := dep.Spec.Template.Spec
		sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
			fail("Deployment", n, "spec.selector must be non-empty and match the pod template's labels (%v)", err)
		}
		if hpaTargets[n] && dep.Spec.Replicas != nil {
			fail("Deployment", n, "has spec.replicas while an HPA scales it (each upgrade would reset the HPA's count)")
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			fail("Deployment", n, "automountServiceAccountToken must be false (no Kubernetes API access needed)")
		}
		if len(ps.TopologySpreadConstraints) == 0 {
			fail("Deployment", n, "no topologySpreadConstraints")
		}
		for _, tsc := range ps.TopologySpreadConstraints {
			if tsc.LabelSelector == nil {
				fail("Deployment", n, "topologySpreadConstraint on %s has no labelSelector", tsc.TopologyKey)
			}
		}
		volumes := map[string]bool{}
		for _, v := range ps.Volumes {
			volumes[v.Name] = true
		}
		for _, c := range ps.Containers {
			for _, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					fail("Deployment", n, "container %s mounts volume %q, which the pod does not define", c.Name, m.Name)
				}
			}
		}
		podNonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
		if len(ps.Containers) == 0 {
			fail("Deployment", n, "no containers")
		}
		for _, c := range ps.Containers {
			cn := n + " container " + c.Name
			sc := c.SecurityContext
			switch {
			case sc == nil:
				fail("Deployment", cn, "no securityContext")
			default:
				if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
					fail("Deployment", cn, "runAsNonRoot is not true")
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					fail("Deployment", cn, "readOnlyRootFilesystem is not true")
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					fail("Deployment", cn, "allowPrivilegeEscalation is not false")
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					fail("Deployment", cn, "capabilities must drop ALL and add none")
				}
				if sc.Privileged != nil && *sc.Privileged {
					fail("Deployment", cn, "privileged")
				}
			}
			if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
				fail("Deployment", cn, "image %q must carry a version tag", c.Image)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				fail("Deployment", cn, "cpu and memory requests are required (HPA and scheduling)")
			}
			if c.Resources.Limits.Memory().IsZero() {
				fail("Deployment", cn, "a memory limit is required")
			}
			probe := func(what string, p *corev1.Probe, path string) {
				if p == nil || p.HTTPGet == nil {
					fail("Deployment", cn, "%s probe must be an httpGet", what)
					return
				}
				if p.HTTPGet.Path != path {
					fail("Deployment", cn, "%s probe path %q, want %q", what, p.HTTPGet.Path, path)
				}
				if !hasPort(c, p.HTTPGet.Port.String()) {
					fail("Deployment", cn, "%s probe port %s is not a container port", what, p.HTTPGet.Port.String())
				}
			}
			probe("liveness", c.LivenessProbe, "/healthz")
			probe("readiness", c.ReadinessProbe, "/readyz")
			probe("startup", c.StartupProbe, "/healthz")
			var names []string
			for _, e := range c.Env {
				names = append(names, e.Name)
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					if s, ok := d.secrets[ref.Name]; ok {
						if _, has := s.Data[ref.Key]; !has {
							if _, has := s.StringData[ref.Key]; !has {
								fail("Deployment", cn, "env %s refers to key %q that Secret %s does not have", e.Name, ref.Key, ref.Name)
							}
						}
					}
				}
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					if _, ok := d.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]; !ok {
						fail("Deployment", cn, "env %s refers to ConfigMap %s that is not rendered", e.Name, e.ValueFrom.ConfigMapKeyRef.Name)
					}
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					cm, ok := d.configMaps[ef.ConfigMapRef.Name]
					if !ok {
						fail("Deployment", cn, "envFrom ConfigMap %s is not rendered", ef.ConfigMapRef.Name)
						continue
					}
					for k := range cm.Data {
						names = append(names, k)
					}
				}
			}
			if err := unknownEnv(names, known); err != nil {
				fail("Deployment", cn, "%v", err)
			}
			for _, want := range []string{"POSTBACK_NATS_URL", "POSTBACK_STREAM_REPLICAS", "POSTBACK_HTTP_ADDR"} {
				if !slices.Contains(names, want) {
					fail("Deployment", cn, "%s is not set", want)
				}
			}
			if strings.HasSuffix(n, "-gateway") && !slices.Contains(names, "POSTBACK_TOKENS") {
				fail("Deployment", cn, "POSTBACK_TOKENS is not set (the gateway refuses to start without API tokens)")
			}
			if strings.HasSuffix(n, "-gateway") || strings.HasSuffix(n, "-sender") {
				if !slices.Contains(names, "POSTBACK_SECRET_KEY") {
					fail("Deployment", cn, "POSTBACK_SECRET_KEY is not set (the gateway and the sender refuse to start without it)")
				}
			}
		}
	}
	matchDeployment := func(sel map[string]string) *appsv1.Deployment {
		if len(sel) == 0 {
			return nil
		}
		for _, dep := range d.deployments {
			if labels.SelectorFromSet(sel).Matches(labels.Set(dep.Spec.Template.Labels)) {
				return dep
			}
		}
		return nil
	}
	for _, s := range d.services {
		dep := matchDeployment(s.Spec.Selector)
		if dep == nil {
			fail("Service", s.Name, "selector %v matches no Deployment's pods", s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if !hasPort(dep.Spec.Template.Spec.Containers[0], p.TargetPort.String()) {
				fail("Service", s.Name, "targetPort %s is not a port of Deployment %s", p.TargetPort.String(), dep.Name)
			}
		}
	}
	for _, h := range d.hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || deploymentByName[h.Spec.ScaleTargetRef.Name] == nil {
			fail("HorizontalPodAutoscaler", h.Name, "scaleTargetRef %s/%s is not a rendered Deployment", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			fail("HorizontalPodAutoscaler", h.Name, "minReplicas must be set and not above maxReplicas")
		}
		if len(h.Spec.Metrics) == 0 {
			fail("HorizontalPodAutoscaler", h.Name, "no metrics")
		}
	}
	for _, p := range d.pdbs {
		if p.Spec.Selector == nil || matchDeployment(p.Spec.Selector.MatchLabels) == nil {
			fail("PodDisruptionBudget", p.Name, "selector matches no Deployment's pods")
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			fail("PodDisruptionBudget", p.Name, "exactly one of minAvailable and maxUnavailable must be set")
		}
	}
	for _, np := range d.netpols {
		dep := matchDeployment(np.Spec.PodSelector.MatchLabels)
		if dep == nil {
			fail("NetworkPolicy", np.Name, "podSelector matches no Deployment's pods")
			continue
		}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				if p.Port != nil && !hasPort(dep.Spec.Template.Spec.Containers[0], p.Port.String()) {
					fail("NetworkPolicy", np.Name, "ingress port %s is not a port of Deployment %s", p.Port.String(), dep.Name)
				}
			}
		}
		for _, eg := range np.Spec.Egress {
			for _, to := range eg.To {
				if to.IPBlock != nil {
					for _, ex := range to.IPBlock.Except {
						if !cidrWithin(ex, to.IPBlock.CIDR) {
							fail("NetworkPolicy", np.Name, "ipBlock except %s is not inside %s", ex, to.IPBlock.CIDR)
						}
					}
				}
			}
		}
	}
	errs = append(errs, d.historyPolicy()...)
	errs = append(errs, d.natsPolicy(d.nats)...)
	for _, sm := range d.monitors {
		ok := false
		for _, s := range d.services {
			if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
				ok = true
			}
		}
		if !ok {
			fail("ServiceMonitor", sm.Name, "selector matches no rendered Service")
		}
	}
	return errs
}

// historyComponents open the delivery history store: the gateway reads it,
// the historian writes it.
var historyComponents = []string{"gateway", "historian"}

// historyPolicy: POSTBACK_HISTORY_URL is never a plain value (the URL carries
// the database password); the gateway and the historian get it from the same
// Secret key, or (history.embedded) neither gets it and each has a single
// replica with POSTBACK_DATA_DIR on a writable volume (the root filesystem is
// read-only).
func (d decoded) historyPolicy() []error {
	var errs []error
	fail := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("Deployment/%s: %s", name, fmt.Sprintf(format, a...)))
	}
	store := map[string]string{} // deployment -> its history store
	for _, dep := range d.deployments {
		ps := dep.Spec.Template.Spec
		for _, c := range ps.Containers {
			for _, e := range c.Env {
				if e.Name == "POSTBACK_HISTORY_URL" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					fail(dep.Name, "container %s: POSTBACK_HISTORY_URL must come from a Secret (valueFrom.secretKeyRef), it carries the database password", c.Name)
				}
			}
		}
		component := dep.Spec.Template.Labels["app.kubernetes.io/component"]
		if !slices.Contains(historyComponents, component) || len(ps.Containers) == 0 {
			continue
		}
		c := ps.Containers[0]
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		if e, ok := env["POSTBACK_HISTORY_URL"]; ok {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				store[dep.Name] = fmt.Sprintf("Secret %s key %s", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			continue
		}
		// The embedded store: a SQLite file in POSTBACK_DATA_DIR.
		store[dep.Name] = "the embedded store"
		dir := env["POSTBACK_DATA_DIR"].Value
		if dir == "" {
			fail(dep.Name, "%s has neither POSTBACK_HISTORY_URL (from a Secret) nor POSTBACK_DATA_DIR for the embedded history store", component)
			continue
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir && !m.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			fail(dep.Name, "POSTBACK_DATA_DIR %s (embedded history store) is not a writable volume mount; the root filesystem is read-only", dir)
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
			fail(dep.Name, "the embedded history store allows exactly one replica (each pod keeps its own file)")
		}
	}
	names := sortedKeys(store)
	sort.Strings(names)
	for _, n := range names[min(1, len(names)):] {
		if store[n] != store[names[0]] {
			fail(n, "history store is %s, but %s uses %s: the gateway and the historian must share one", store[n], names[0], store[names[0]])
		}
	}
	return errs
}

func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return true
		}
	}
	return false
}
