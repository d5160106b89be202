{{/*
Helpers shared by the templates. Object names are fixed (jobmetrics-webhook, jobmetrics-gateway, …)
as in manifests/base: the webhook's settings, RBAC resourceNames and the URLs between the parts
name each other, and the chart renders, with default values, exactly the objects of
`kubectl kustomize manifests/base` (test/integration/helm-chart.test.ts).
*/}}

{{/* The namespace every namespaced object goes to. */}}
{{- define "jobmetrics.namespace" -}}
{{- .Values.namespace.name -}}
{{- end -}}

{{/* The labels manifests/base/kustomization.yaml adds to every object of the base. */}}
{{- define "jobmetrics.commonLabels" -}}
app.kubernetes.io/part-of: jobmetrics
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/*
metadata.labels of one part: (dict "ctx" $ "name" "jobmetrics-webhook" "component" "webhook").
*/}}
{{- define "jobmetrics.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
{{ include "jobmetrics.commonLabels" .ctx }}
{{- end -}}

{{/* The pod template's labels of one part (the selector's name, its component, part-of). */}}
{{- define "jobmetrics.podLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: jobmetrics
{{- end -}}

{{/* The tag of the project's two images: image.tag, else the chart's appVersion. */}}
{{- define "jobmetrics.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* <registry>/jobmetrics-webhook:<tag>: the webhook, and the gateway and recorder it also holds. */}}
{{- define "jobmetrics.webhookImage" -}}
{{- printf "%s/jobmetrics-webhook:%s" (trimSuffix "/" .Values.image.registry) (include "jobmetrics.tag" .) -}}
{{- end -}}

{{/* imagePullSecrets of every pod the chart runs (not of the Job pods: the sidecar is pulled with theirs). */}}
{{- define "jobmetrics.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The name kustomize's configMapGenerator gives a ConfigMap: <name>-<hash of its data>, so that a
change of the data renames it and rolls the pods that mount it, as with the kustomize install.
The hash is kustomize's own (sigs.k8s.io/kustomize/api/hasher): sha256 of the JSON
{"data":…,"kind":"ConfigMap","name":""} (its name lookup finds nothing, so it hashes ""), the first
10 hex digits with 0, 1, 3, a, e spelt g, h, k, m, t. Argument: (dict "name" … "data" (dict …)).
*/}}
{{- define "jobmetrics.generatedName" -}}
{{- $sum := dict "data" .data "kind" "ConfigMap" "name" "" | toJson | sha256sum | trunc 10 -}}
{{- $sum = $sum | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" -}}
{{- printf "%s-%s" .name $sum -}}
{{- end -}}

{{/* The data of the generated ConfigMaps, each in one place (the ConfigMap and its users' names). */}}
{{- define "jobmetrics.webhookSettingsData" -}}
{{- dict "webhook.yaml" (include "jobmetrics.webhookSettings" .) | toJson -}}
{{- end -}}

{{- define "jobmetrics.aggregatorConfigData" -}}
{{- dict "stream-aggr.yaml" (.Files.Get "files/stream-aggr.yaml") | toJson -}}
{{- end -}}

{{- define "jobmetrics.remoteWriteData" -}}
{{- dict "url" (include "jobmetrics.storeUrl" .) | toJson -}}
{{- end -}}

{{- define "jobmetrics.prometheusConfigData" -}}
{{- $prom := .Files.Get "files/prometheus.yml" | replace "namespace: jobmetrics" (printf "namespace: %s" (include "jobmetrics.namespace" .)) -}}
{{- dict "prometheus.yml" $prom "jobmetrics.rules.yml" (.Files.Get "files/jobmetrics.rules.yml") | toJson -}}
{{- end -}}

{{- define "jobmetrics.webhookSettingsName" -}}
{{- include "jobmetrics.generatedName" (dict "name" "jobmetrics-webhook-settings" "data" (include "jobmetrics.webhookSettingsData" . | fromJson)) -}}
{{- end -}}
{{- define "jobmetrics.aggregatorConfigName" -}}
{{- include "jobmetrics.generatedName" (dict "name" "jobmetrics-aggregator-config" "data" (include "jobmetrics.aggregatorConfigData" . | fromJson)) -}}
{{- end -}}
{{- define "jobmetrics.remoteWriteName" -}}
{{- include "jobmetrics.generatedName" (dict "name" "jobmetrics-aggregator-remote-write" "data" (include "jobmetrics.remoteWriteData" . | fromJson)) -}}
{{- end -}}
{{- define "jobmetrics.prometheusConfigName" -}}
{{- include "jobmetrics.generatedName" (dict "name" "jobmetrics-prometheus-config" "data" (include "jobmetrics.prometheusConfigData" . | fromJson)) -}}
{{- end -}}

{{/* Where vmagent writes the aggregated series: aggregator.remoteWriteUrl, else the bundled Prometheus. */}}
{{- define "jobmetrics.storeUrl" -}}
{{- .Values.aggregator.remoteWriteUrl | default (printf "http://jobmetrics-prometheus.%s.svc:9090/api/v1/write" (include "jobmetrics.namespace" .)) -}}
{{- end -}}

{{/* Whether the bundled Prometheus is installed: only when no store of your own is named. */}}
{{- define "jobmetrics.bundledStore" -}}
{{- if not .Values.aggregator.remoteWriteUrl }}true{{ end -}}
{{- end -}}

{{/*
The store's sign-in: basic, bearer, or empty (none: the bundled Prometheus, which gets the install's
own credentials, or no aggregator.remoteWriteAuth.secretName).
*/}}
{{- define "jobmetrics.storeAuthType" -}}
{{- $auth := .Values.aggregator.remoteWriteAuth -}}
{{- if $auth.secretName -}}
{{- if include "jobmetrics.bundledStore" . -}}
{{- fail "aggregator.remoteWriteAuth.secretName is for aggregator.remoteWriteUrl, which is empty: the bundled Prometheus takes the install's own credentials" -}}
{{- end -}}
{{- if not (has $auth.type (list "basic" "bearer")) -}}
{{- fail (printf "aggregator.remoteWriteAuth.type must be basic or bearer (got %q)" $auth.type) -}}
{{- end -}}
{{- $auth.type -}}
{{- end -}}
{{- end -}}

{{/* aggregator.remoteWriteHeaders as vmagent's -remoteWrite.headers value (`Name:value^^Name:value`, sorted by name). */}}
{{- define "jobmetrics.storeHeaders" -}}
{{- $h := .Values.aggregator.remoteWriteHeaders | default dict -}}
{{- if and $h (include "jobmetrics.bundledStore" .) -}}
{{- fail "aggregator.remoteWriteHeaders is for aggregator.remoteWriteUrl, which is empty" -}}
{{- end -}}
{{- $out := list -}}
{{- range $name := keys $h | sortAlpha -}}
{{- $value := toString (get $h $name) -}}
{{- if or (contains "," $value) (contains "^^" $value) (contains ":" $name) -}}
{{- fail (printf "aggregator.remoteWriteHeaders.%s: no `,` or `^^` in a value and no `:` in a name (vmagent's separators; got %q)" $name $value) -}}
{{- end -}}
{{- $out = append $out (printf "%s:%s" $name $value) -}}
{{- end -}}
{{- join "^^" $out -}}
{{- end -}}

{{/* Where the sidecars write: webhook.settings.sidecar.remoteWriteUrl, else the gateway. */}}
{{- define "jobmetrics.sidecarRemoteWriteUrl" -}}
{{- .Values.sidecar.remoteWriteUrl | default (printf "http://jobmetrics-gateway.%s.svc:8480/api/v1/write" (include "jobmetrics.namespace" .)) -}}
{{- end -}}

{{/* Namespaces the webhook never injects into: the configured list and the install's own. */}}
{{- define "jobmetrics.excludedNamespaces" -}}
{{- $ns := include "jobmetrics.namespace" . -}}
{{- $list := .Values.webhook.excludedNamespaces -}}
{{- if not (has $ns $list) }}{{ $list = append $list $ns }}{{ end -}}
{{- toJson $list -}}
{{- end -}}

{{/* The aggregator layout: single, sharded or ha. */}}
{{- define "jobmetrics.layout" -}}
{{- $l := .Values.aggregator.layout -}}
{{- if not (has $l (list "single" "sharded" "ha")) -}}
{{- fail (printf "aggregator.layout must be single, sharded or ha (got %q)" $l) -}}
{{- end -}}
{{- $l -}}
{{- end -}}

{{/* TLS source: bootstrap or cert-manager. */}}
{{- define "jobmetrics.tls" -}}
{{- $t := .Values.webhook.tls.source -}}
{{- if not (has $t (list "bootstrap" "cert-manager")) -}}
{{- fail (printf "webhook.tls.source must be bootstrap or cert-manager (got %q)" $t) -}}
{{- end -}}
{{- $t -}}
{{- end -}}
