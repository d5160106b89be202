{{/*
The webhook's settings file (webhook/config.ts; docs/webhook.md has the table): a copy of
manifests/base/webhook-settings.yaml with the chart's values in place. With default values it is
that file byte for byte (test/integration/helm-chart.test.ts compares them), so keep the two in step.
*/}}
{{- define "jobmetrics.webhookSettings" -}}
{{- $s := .Values.webhook.settings -}}
{{- $c := .Values.sidecar -}}
{{- $ns := include "jobmetrics.namespace" . -}}
# jobmetrics-webhook settings (webhook/config.ts; docs/webhook.md has the table). Every setting is
# written out with its built-in default, so this file documents what runs; each one can also be
# overridden by its environment variable (named in the comment) in the Deployment.
# An unknown key is an error at start: a misspelt setting never silently keeps its default.

listen: 0.0.0.0:8443                # JOBMETRICS_LISTEN; the Service maps 443 to this port
tlsDir: ""                          # JOBMETRICS_TLS_DIR; empty: bootstrap a CA and certificate
                                    # through the API (Secret jobmetrics-webhook-tls, caBundle of
                                    # MutatingWebhookConfiguration jobmetrics). overlays/cert-manager
                                    # sets JOBMETRICS_TLS_DIR to the mounted Certificate instead.
mode: {{ $s.mode }}                          # JOBMETRICS_SIDECAR_MODE: auto (native on Kubernetes >= 1.29),
                                    # native or legacy
maxRequestBytes: {{ $s.maxRequestBytes }}                # JOBMETRICS_MAX_REQUEST_BYTES
# Against slow and idle clients (docs/webhook.md "Limits and load shedding"): request-body bytes
# held at once (a request beyond it gets 503 before its body is read), open connections, and how
# long a request's headers and the whole request may take (then 408).
maxInFlightBytes: {{ $s.maxInFlightBytes }}              # JOBMETRICS_MAX_IN_FLIGHT_BYTES; at least twice maxRequestBytes
maxConnections: {{ $s.maxConnections }}                 # JOBMETRICS_MAX_CONNECTIONS
headersTimeout: {{ $s.headersTimeout }}                  # JOBMETRICS_HEADERS_TIMEOUT; also the TLS handshake
requestTimeout: {{ $s.requestTimeout }}                 # JOBMETRICS_REQUEST_TIMEOUT; at least headersTimeout
shutdownDelay: {{ $s.shutdownDelay }}                   # JOBMETRICS_SHUTDOWN_DELAY; on SIGTERM, not ready but still
                                    # accepting while endpoints drop the pod
shutdownGrace: {{ $s.shutdownGrace }}                  # JOBMETRICS_SHUTDOWN_GRACE; shutdownDelay + shutdownGrace below
                                    # the pod's terminationGracePeriodSeconds (30)
logLevel: {{ $s.logLevel }}                      # JOBMETRICS_LOG_LEVEL
# Never inject into these, not even an opted-in pod: the control plane's namespaces and this one.
# The MutatingWebhookConfiguration's namespaceSelector excludes the same names; keep them in step.
pod:
  name: ""                          # JOBMETRICS_POD_NAME; the Deployment sets it (downward API)
  namespace: ""                     # JOBMETRICS_POD_NAMESPACE; likewise
excludedNamespaces: {{ include "jobmetrics.excludedNamespaces" . | fromJsonArray | join "," }}   # JOBMETRICS_EXCLUDED_NAMESPACES

kube:
  kubeconfig: ""                    # KUBECONFIG; empty: the pod's ServiceAccount (in-cluster)
  timeout: {{ $s.apiTimeout }}                       # JOBMETRICS_API_TIMEOUT

bootstrap:
  serviceName: jobmetrics-webhook   # JOBMETRICS_SERVICE_NAME; names in the certificate
  serviceNamespace: {{ $ns }}      # JOBMETRICS_SERVICE_NAMESPACE
  secretName: jobmetrics-webhook-tls        # JOBMETRICS_TLS_SECRET (RBAC: resourceNames)
  webhookConfigurationName: jobmetrics      # JOBMETRICS_WEBHOOK_CONFIGURATION (RBAC: resourceNames)

workloadLookup:
  enabled: {{ $s.workloadLookup.enabled }}                     # JOBMETRICS_WORKLOAD_LOOKUP; GET the pod's Job (RBAC: get jobs)
  timeout: {{ $s.workloadLookup.timeout }}                       # JOBMETRICS_WORKLOAD_LOOKUP_TIMEOUT; below the webhook's
                                    # timeoutSeconds (5) in the MutatingWebhookConfiguration
  cacheTtl: {{ $s.workloadLookup.cacheTtl }}                     # JOBMETRICS_WORKLOAD_LOOKUP_CACHE_TTL

sidecar:
  # JOBMETRICS_SIDECAR_IMAGE; empty: the webhook's own image with jobmetrics-webhook replaced by
  # jobmetrics-sidecar (same registry, path and tag), read from its Pod: the one image setting
  # (kustomize `images:`, `kubectl set image`) moves both. Set it only for a sidecar image named
  # otherwise or pinned by digest.
  image: {{ $c.image | quote }}
  imagePullPolicy: {{ $c.imagePullPolicy }}                            # JOBMETRICS_SIDECAR_IMAGE_PULL_POLICY
  # JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS: Secrets added to every injected pod's imagePullSecrets
  # (comma-separated), for a sidecar image in a private registry. Each must exist in every
  # namespace whose Jobs get the sidecar (docs/install.md "Private registries").
  imagePullSecrets: {{ $c.imagePullSecrets | join "," | quote }}
  # The gateway in front of the aggregator (aggregator/gateway.yaml). JOBMETRICS_SIDECAR_REMOTE_WRITE_URL
  remoteWriteUrl: {{ include "jobmetrics.sidecarRemoteWriteUrl" . }}
  interval: {{ $c.interval }}                      # JOBMETRICS_SIDECAR_INTERVAL; a pod may set jobmetrics.io/interval
  pushInterval: {{ $c.pushInterval }}                 # JOBMETRICS_SIDECAR_PUSH_INTERVAL; the aggregator's interval is 10s too
  flushTimeout: {{ $c.flushTimeout }}                 # JOBMETRICS_SIDECAR_FLUSH_TIMEOUT
  tokenAudience: {{ $c.tokenAudience }} # JOBMETRICS_TOKEN_AUDIENCE; the gateway's JOBMETRICS_TOKEN_AUDIENCE
  resources:
    requests:
      cpu: {{ $c.resources.requests.cpu }}                      # JOBMETRICS_SIDECAR_CPU_REQUEST
      memory: {{ $c.resources.requests.memory }}                  # JOBMETRICS_SIDECAR_MEMORY_REQUEST
    limits:
      cpu: {{ $c.resources.limits.cpu | quote }}                       # JOBMETRICS_SIDECAR_CPU_LIMIT; none, so the final flush is
                                    # never throttled
      memory: {{ $c.resources.limits.memory }}                 # JOBMETRICS_SIDECAR_MEMORY_LIMIT
{{ end -}}
