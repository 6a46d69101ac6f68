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
