{{/* Labels every object of the release carries. */}}
{{- define "eino.labels" -}}
app.kubernetes.io/name: eino
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eino
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* What selects the control-plane pods. */}}
{{- define "eino.selector" -}}
app.kubernetes.io/name: eino
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end }}

{{- define "eino.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Where the API server reaches a webhook: the Service, or webhook.url for a control plane outside the cluster. */}}
{{- define "eino.webhookClient" -}}
{{- if .root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else }}
service:
  name: eino-control
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path | quote }}
  port: {{ .root.Values.controlPlane.port }}
{{- end }}
{{- with .root.Values.webhook.caBundle }}
caBundle: {{ b64enc . }}
{{- end }}
{{- end }}
