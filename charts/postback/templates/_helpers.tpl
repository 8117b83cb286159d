{{/* The chart name. */}}
{{- define "postback.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release-chart, or the release name when it holds the chart name. */}}
{{- define "postback.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The services this chart deploys, in order. */}}
{{- define "postback.components" -}}
gateway renderer sender retry historian
{{- end }}

{{/* Labels of every resource. */}}
{{- define "postback.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "postback.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: postback
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "sender"). */}}
{{- define "postback.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postback.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of one component's resources: (dict "root" $ "component" "sender"). */}}
{{- define "postback.componentLabels" -}}
{{ include "postback.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A component's resource name: (dict "root" $ "component" "sender"). */}}
{{- define "postback.componentName" -}}
{{- printf "%s-%s" (include "postback.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{/* The image of a component: (dict "root" $ "component" "sender"). */}}
{{- define "postback.image" -}}
{{- $img := .root.Values.image }}
{{- printf "%s/postback-%s:%s" (trimSuffix "/" $img.registry) .component (default .root.Chart.AppVersion $img.tag) }}
{{- end }}

{{- define "postback.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "postback.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The chart's own Secret and ConfigMap. */}}
{{- define "postback.secretName" -}}
{{- include "postback.fullname" . }}
{{- end }}
{{- define "postback.configName" -}}
{{- printf "%s-config" (include "postback.fullname" .) }}
{{- end }}

{{/* Whether the chart's Secret holds each key. */}}
{{- define "postback.ownsSecretKey" -}}
{{- if not .Values.secretKey.existingSecret }}true{{ end }}
{{- end }}
{{- define "postback.ownsRedisURL" -}}
{{- if and (not .Values.redis.existingSecret) .Values.redis.url }}true{{ end }}
{{- end }}
{{- define "postback.ownsRedisPassword" -}}
{{- if and (not .Values.redis.existingSecret) (not .Values.redis.url) .Values.redis.host (not .Values.redis.existingPasswordSecret) .Values.redis.password }}true{{ end }}
{{- end }}
{{- define "postback.ownsJobKey" -}}
{{- if not .Values.jobKey.existingSecret }}true{{ end }}
{{- end }}
{{- define "postback.ownsTokens" -}}
{{- if not .Values.tokens.existingSecret }}true{{ end }}
{{- end }}

{{/* The components that open the delivery history store (POSTBACK_HISTORY_URL). */}}
{{- define "postback.historyComponents" -}}
gateway historian
{{- end }}

{{/* Where the embedded history store lives (history.embedded: an emptyDir). */}}
{{- define "postback.embeddedDataDir" -}}
/var/lib/postback
{{- end }}

{{/*
The history store settings, checked before anything renders: PostgreSQL from
history.existingSecret, or (trials only) history.embedded; never neither.
*/}}
{{- define "postback.validateHistory" -}}
{{- $h := .Values.history }}
{{- $needed := or .Values.gateway.enabled .Values.historian.enabled }}
{{- if and $needed (not $h.existingSecret) (not $h.embedded) }}
{{- fail `history.existingSecret is required: the gateway and the historian need the PostgreSQL delivery history store. Create a Secret holding its postgres:// URL (kubectl create secret generic postback-history --from-literal=url='postgres://USER:PASSWORD@HOST:5432/DB?sslmode=require') and set history.existingSecret=postback-history (history.secretKey names the key, default "url"). For a single-replica trial without PostgreSQL set history.embedded=true instead.` }}
{{- end }}
{{- if and $h.existingSecret $h.embedded }}
{{- fail "history.existingSecret and history.embedded are both set: choose PostgreSQL (existingSecret) or the embedded store (embedded: true), not both" }}
{{- end }}
{{- if $h.embedded }}
{{- if and .Values.gateway.enabled (gt (int .Values.gateway.replicaCount) 1) }}
{{- fail (printf "history.embedded keeps the history in each pod's own file: it allows one gateway replica, not gateway.replicaCount=%v (use history.existingSecret with PostgreSQL)" .Values.gateway.replicaCount) }}
{{- end }}
{{- if and .Values.historian.enabled (gt (int .Values.historian.replicaCount) 1) }}
{{- fail (printf "history.embedded keeps the history in each pod's own file: it allows one historian replica, not historian.replicaCount=%v (use history.existingSecret with PostgreSQL)" .Values.historian.replicaCount) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The components that hold the job key (POSTBACK_JOB_KEY): the renderer tags jobs, the sender verifies them. */}}
{{- define "postback.jobKeyComponents" -}}
renderer sender
{{- end }}

{{/* Whether each service connects as its own NATS user (nats.auth; a whole URL from nats.existingSecret wins). */}}
{{- define "postback.natsAuth" -}}
{{- if and .Values.nats.auth.enabled (not .Values.nats.existingSecret) }}true{{ end }}
{{- end }}

{{/* Where the NATS CA bundle is mounted (nats.tls.caSecret). */}}
{{- define "postback.natsCADir" -}}
/etc/postback/nats-ca
{{- end }}

{{/*
The NATS settings, checked before anything renders (after the history store):
the URLs, the users' Secret with nats.auth, tls:// with nats.tls.
*/}}
{{- define "postback.validateNATS" -}}
{{- $n := .Values.nats }}
{{- if and (not $n.existingSecret) (not $n.url) }}
{{- fail "nats.url (or nats.existingSecret) is required: the services need an external NATS JetStream cluster, e.g. nats.url=nats://nats.nats.svc.cluster.local:4222 (see charts/nats-values.yaml)" }}
{{- end }}
{{- if and (not $n.existingSecret) (contains "@" $n.url) }}
{{- fail "nats.url carries credentials (user:password@): they would be in the ConfigMap and the manifests. Put the passwords in the Secret of nats.auth.existingSecret (each service its own user), or a whole URL in a Secret named by nats.existingSecret" }}
{{- end }}
{{- if and (include "postback.natsAuth" .) (not $n.auth.existingSecret) }}
{{- fail (printf `nats.auth.existingSecret is required: each service connects to NATS as its own user (gateway, renderer, sender, retry, historian; deploy/nats/auth.conf), its password from this Secret, which the NATS servers read too (charts/nats-values.yaml). Create it once with URL-safe passwords, in both namespaces: for u in postback gateway renderer sender retry historian; do echo "$u=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')"; done > nats-users.env; kubectl -n nats create secret generic postback-nats-users --from-env-file=nats-users.env; kubectl -n %s create secret generic postback-nats-users --from-env-file=nats-users.env; rm nats-users.env. Then set nats.auth.existingSecret=postback-nats-users. (nats.existingSecret instead gives every service one URL with credentials: one user for all, discouraged; nats.auth.enabled=false only for an unlocked NATS.)` .Release.Namespace) }}
{{- end }}
{{- if and $n.tls.enabled (not $n.existingSecret) }}
{{- range $u := splitList "," $n.url }}
{{- if not (hasPrefix "tls://" (trim $u)) }}
{{- fail (printf "nats.tls.enabled: every URL of nats.url must be tls://, not %q (e.g. tls://nats.nats.svc.cluster.local:4222)" (trim $u)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $n.tls.caSecret (not $n.tls.enabled) }}
{{- fail "nats.tls.caSecret is set but nats.tls.enabled is false: set nats.tls.enabled=true (and tls:// URLs in nats.url), or drop the caSecret" }}
{{- end }}
{{- end }}

{{/*
A component's POSTBACK_NATS_URL under nats.auth: every URL of nats.url with
<component>:$(NATS_PASSWORD)@ inserted (Kubernetes expands $(NATS_PASSWORD),
an earlier variable of the container, from the Secret): (dict "root" $ "component" "sender").
*/}}
{{- define "postback.natsURL" -}}
{{- $component := .component }}
{{- $urls := list }}
{{- range $u := splitList "," .root.Values.nats.url }}
{{- $u = trim $u }}
{{- $parts := splitn "://" 2 $u }}
{{- $urls = append $urls (printf "%s://%s:$(NATS_PASSWORD)@%s" $parts._0 $component $parts._1) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* Whether Redis is configured at all. */}}
{{- define "postback.redisConfigured" -}}
{{- if or .Values.redis.existingSecret .Values.redis.url .Values.redis.host }}true{{ end }}
{{- end }}

{{/*
The secret key: the given value; else the one already stored in the release's
Secret (lookup; empty under `helm template`); else 32 fresh random bytes.
*/}}
{{- define "postback.secretKeyValue" -}}
{{- if .Values.secretKey.value }}
{{- .Values.secretKey.value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "postback.secretName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "secret-key") }}
{{- index $existing.data "secret-key" | b64dec }}
{{- else }}
{{- printf "k1:%s" (randBytes 32) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The job key: the given value; else the one already stored in the release's
Secret (lookup; empty under `helm template`); else 32 fresh random bytes.
*/}}
{{- define "postback.jobKeyValue" -}}
{{- if .Values.jobKey.value }}
{{- .Values.jobKey.value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "postback.secretName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "job-key") }}
{{- index $existing.data "job-key" | b64dec }}
{{- else }}
{{- printf "j1:%s" (randBytes 32) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The API tokens: the given value; else the ones already stored in the release's
Secret; else one generated operator token (32 random characters, account *).
*/}}
{{- define "postback.tokensValue" -}}
{{- if .Values.tokens.value }}
{{- .Values.tokens.value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "postback.secretName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "tokens") }}
{{- index $existing.data "tokens" | b64dec }}
{{- else }}
{{- printf "%s=*" (randAlphaNum 32) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The environment of a component's container: (dict "root" $ "component" "sender"). */}}
{{- define "postback.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := index $v .component -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if $v.nats.existingSecret }}
- name: POSTBACK_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.nats.existingSecret }}
      key: {{ $v.nats.existingSecretKey }}
{{- else if include "postback.natsAuth" $root }}
{{- /* The service's own NATS user: its password (not a POSTBACK_ variable), then the URLs built with it. */}}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.nats.auth.existingSecret }}
      key: {{ .component }}
- name: POSTBACK_NATS_URL
  value: {{ include "postback.natsURL" . | quote }}
{{- end }}
{{- if and $v.nats.tls.enabled $v.nats.tls.caSecret }}
- name: POSTBACK_NATS_CA
  value: {{ printf "%s/ca.crt" (include "postback.natsCADir" $root) }}
{{- end }}
{{- if has .component (list "gateway" "sender") }}
- name: POSTBACK_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "postback.secretName" $root) $v.secretKey.existingSecret }}
      key: {{ ternary $v.secretKey.existingSecretKey "secret-key" (not (empty $v.secretKey.existingSecret)) }}
{{- end }}
{{- if has .component (splitList " " (include "postback.jobKeyComponents" $root)) }}
- name: POSTBACK_JOB_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "postback.secretName" $root) $v.jobKey.existingSecret }}
      key: {{ ternary $v.jobKey.existingSecretKey "job-key" (not (empty $v.jobKey.existingSecret)) }}
{{- end }}
{{- if has .component (splitList " " (include "postback.historyComponents" $root)) }}
{{- if $v.history.existingSecret }}
- name: POSTBACK_HISTORY_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.history.existingSecret }}
      key: {{ default "url" $v.history.secretKey }}
{{- else }}
- name: POSTBACK_DATA_DIR
  value: {{ include "postback.embeddedDataDir" $root }}
{{- end }}
{{- end }}
{{- if and (eq .component "gateway") $v.gateway.tls.existingSecret }}
- name: POSTBACK_TLS_CERT
  value: /etc/postback/tls/tls.crt
- name: POSTBACK_TLS_KEY
  value: /etc/postback/tls/tls.key
{{- if $v.gateway.tls.clientCASecret }}
- name: POSTBACK_TLS_CLIENT_CA
  value: /etc/postback/client-ca/ca.crt
{{- end }}
{{- end }}
{{- if eq .component "gateway" }}
- name: POSTBACK_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ default (include "postback.secretName" $root) $v.tokens.existingSecret }}
      key: {{ ternary $v.tokens.existingSecretKey "tokens" (not (empty $v.tokens.existingSecret)) }}
{{- end }}
{{- if eq .component "sender" }}
{{- if $v.redis.existingSecret }}
- name: POSTBACK_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.existingSecret }}
      key: {{ $v.redis.existingSecretKey }}
{{- else if $v.redis.url }}
- name: POSTBACK_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "postback.secretName" $root }}
      key: redis-url
{{- else if $v.redis.host }}
{{- $hasPassword := or $v.redis.existingPasswordSecret $v.redis.password }}
{{- if $hasPassword }}
- name: POSTBACK_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "postback.secretName" $root) $v.redis.existingPasswordSecret }}
      key: {{ ternary $v.redis.existingPasswordSecretKey "redis-password" (not (empty $v.redis.existingPasswordSecret)) }}
{{- end }}
- name: POSTBACK_REDIS_URL
  value: {{ printf "%s://%s%s:%v/%v" (ternary "rediss" "redis" $v.redis.tls) (ternary ":$(POSTBACK_REDIS_PASSWORD)@" "" (not (empty $hasPassword))) $v.redis.host $v.redis.port $v.redis.db | quote }}
{{- end }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: postback-{{ .component }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)%s" (ternary (printf ",%s" $v.otel.resourceAttributes) "" (not (empty $v.otel.resourceAttributes))) | quote }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The default topology spread of a component: (dict "root" $ "component" "sender"). */}}
{{- define "postback.topologySpread" -}}
{{- $ts := .root.Values.topologySpread -}}
- maxSkew: {{ $ts.zoneMaxSkew }}
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: {{ $ts.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "postback.selectorLabels" . | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
- maxSkew: {{ $ts.hostnameMaxSkew }}
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: {{ $ts.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "postback.selectorLabels" . | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
{{- end }}
