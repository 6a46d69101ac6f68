{{- define "chargeback.name" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "chargeback.labels" -}}
app.kubernetes.io/name: chargeback-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- range $key, $value := .Values.commonLabels }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "chargeback.selector" -}}
app.kubernetes.io/name: chargeback-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Secret holding the serving certificate, empty for plain HTTP. */}}
{{- define "chargeback.tlsSecret" -}}
{{- if .Values.http.tls.secretName -}}
{{ .Values.http.tls.secretName }}
{{- else if .Values.http.tls.openshiftServingCert -}}
{{ include "chargeback.name" . }}-tls
{{- end -}}
{{- end }}
