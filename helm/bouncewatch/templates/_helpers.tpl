{{/*
Names, labels and shared fragments. Every resource name is defined here and only here;
templates include these helpers and never spell a name themselves.
*/}}

{{/* The chart name, possibly overridden. */}}
{{- define "bouncewatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name: <release>-<chart>, or the release name alone when it already contains the
chart name. Truncated to 52 characters so that suffixes ("-headless", "-topics") and the
StatefulSet's pod ordinal and controller-revision hash still fit the 63-character limit.
*/}}
{{- define "bouncewatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Namespace of every resource. */}}
{{- define "bouncewatch.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "bouncewatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource names. */}}
{{- define "bouncewatch.statefulSetName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.serviceName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.headlessServiceName" -}}
{{- printf "%s-headless" (include "bouncewatch.fullname" .) -}}
{{- end -}}

{{- define "bouncewatch.pdbName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.networkPolicyName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.serviceMonitorName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.dashboardConfigMapName" -}}
{{- printf "%s-dashboard" (include "bouncewatch.fullname" .) -}}
{{- end -}}

{{- define "bouncewatch.prometheusRuleName" -}}
{{- include "bouncewatch.fullname" . -}}
{{- end -}}

{{- define "bouncewatch.topicsJobName" -}}
{{- printf "%s-topics" (include "bouncewatch.fullname" .) -}}
{{- end -}}

{{- define "bouncewatch.testPodName" -}}
{{- printf "%s-test" (include "bouncewatch.fullname" .) -}}
{{- end -}}

{{/*
The label only the metrics Service carries, and the ServiceMonitor selects on (with the
selector labels). The headless Service shares the selector labels: a ServiceMonitor that
selected both would scrape every pod twice and double every sum.
*/}}
{{- define "bouncewatch.metricsServiceLabels" -}}
bouncewatch.io/metrics: "true"
{{- end -}}

{{/* The label that lets a pod through the NetworkPolicy when allowExternal is false. */}}
{{- define "bouncewatch.clientLabel" -}}
{{- printf "%s-client" (include "bouncewatch.fullname" .) -}}
{{- end -}}

{{/* Name of the volume claim template; claims are named <template>-<pod>. */}}
{{- define "bouncewatch.dataVolumeName" -}}
data
{{- end -}}

{{- define "bouncewatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bouncewatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding the rules file: the chart's own, or an existing one. */}}
{{- define "bouncewatch.rulesConfigMapName" -}}
{{- if .Values.rules.inline -}}
{{- printf "%s-rules" (include "bouncewatch.fullname" .) -}}
{{- else -}}
{{- .Values.rules.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/* Whether a rules ConfigMap is mounted at all ("true" or ""). */}}
{{- define "bouncewatch.rulesEnabled" -}}
{{- if or .Values.rules.inline .Values.rules.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/*
Checksum of the rules that rolls the pods when they change. For inline rules it hashes the
ConfigMap's data (not its labels, so a new chart or image version alone does not count as
a rules change); for an existing ConfigMap it hashes its live data, looked up at install
and upgrade time (`helm template` and --dry-run cannot look it up, and hash an empty map).
*/}}
{{- define "bouncewatch.rulesChecksum" -}}
{{- if .Values.rules.inline -}}
{{- (fromYaml (include (print .Template.BasePath "/configmap-rules.yaml") .)).data | toJson | sha256sum -}}
{{- else if .Values.rules.existingConfigMap -}}
{{- $cm := lookup "v1" "ConfigMap" (include "bouncewatch.namespace" .) .Values.rules.existingConfigMap -}}
{{- (get (default (dict) $cm) "data") | default (dict) | toJson | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding the notifications file: the chart's own, or an existing one. */}}
{{- define "bouncewatch.notificationsConfigMapName" -}}
{{- if .Values.notifications.inline -}}
{{- printf "%s-notifications" (include "bouncewatch.fullname" .) -}}
{{- else -}}
{{- .Values.notifications.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/* Whether a notifications ConfigMap is mounted at all ("true" or ""). */}}
{{- define "bouncewatch.notificationsEnabled" -}}
{{- if or .Values.notifications.inline .Values.notifications.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/* Checksum of the notifications file, as bouncewatch.rulesChecksum does for the rules. */}}
{{- define "bouncewatch.notificationsChecksum" -}}
{{- if .Values.notifications.inline -}}
{{- (fromYaml (include (print .Template.BasePath "/configmap-notifications.yaml") .)).data | toJson | sha256sum -}}
{{- else if .Values.notifications.existingConfigMap -}}
{{- $cm := lookup "v1" "ConfigMap" (include "bouncewatch.namespace" .) .Values.notifications.existingConfigMap -}}
{{- (get (default (dict) $cm) "data") | default (dict) | toJson | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* The image reference: registry/repository:tag, or @digest when a digest is given. */}}
{{- define "bouncewatch.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The image of the `helm test` Pod, like bouncewatch.image. */}}
{{- define "bouncewatch.testImage" -}}
{{- $image := .Values.tests.image -}}
{{- $repository := $image.repository -}}
{{- if $image.registry -}}
{{- $repository = printf "%s/%s" $image.registry $image.repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository ($image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (a StatefulSet's selector is immutable).
Call with (dict "context" $ "component" "worker").
*/}}
{{- define "bouncewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bouncewatch.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* All labels of a resource. Call with (dict "context" $ "component" "worker"). */}}
{{- define "bouncewatch.labels" -}}
helm.sh/chart: {{ include "bouncewatch.chart" .context }}
{{ include "bouncewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ default .context.Chart.AppVersion .context.Values.image.tag | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: bouncewatch
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations lines from commonAnnotations plus `extra`; empty when none. */}}
{{- define "bouncewatch.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .extra)) (deepCopy .context.Values.commonAnnotations) -}}
{{- if $all -}}
annotations:
  {{- toYaml $all | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Render a value that may contain templates (a string, or a structure turned to YAML). */}}
{{- define "bouncewatch.tplvalues.render" -}}
{{- if typeIs "string" .value -}}
{{- tpl .value .context -}}
{{- else -}}
{{- tpl (toYaml .value) .context -}}
{{- end -}}
{{- end -}}

{{/* The pod's affinity: values.affinity if given, else the podAntiAffinityPreset. */}}
{{- define "bouncewatch.affinity" -}}
{{- if .Values.affinity -}}
{{- include "bouncewatch.tplvalues.render" (dict "value" .Values.affinity "context" .) -}}
{{- else if eq .Values.podAntiAffinityPreset "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "bouncewatch.selectorLabels" (dict "context" . "component" "worker") | nindent 12 }}
{{- else if eq .Values.podAntiAffinityPreset "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "bouncewatch.selectorLabels" (dict "context" . "component" "worker") | nindent 10 }}
{{- end -}}
{{- end -}}

{{/* topologySpreadConstraints; a constraint without labelSelector gets the worker's. */}}
{{- define "bouncewatch.topologySpreadConstraints" -}}
{{- $selector := fromYaml (include "bouncewatch.selectorLabels" (dict "context" . "component" "worker")) -}}
{{- $constraints := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- $constraints = append $constraints $c -}}
{{- end -}}
{{- include "bouncewatch.tplvalues.render" (dict "value" $constraints "context" .) -}}
{{- end -}}

{{/* A securityContext map without the chart's `enabled` switch. */}}
{{- define "bouncewatch.securityContext" -}}
{{- toYaml (omit . "enabled") -}}
{{- end -}}

{{/* Where Secret files are mounted, and the path of each credential file. */}}
{{- define "bouncewatch.secretsMountPath" -}}
/etc/bouncewatch/secrets
{{- end -}}

{{/*
Credentials come only from existing Secrets, mounted as files through one projected
volume; the worker reads them through BOUNCEWATCH_<NAME>_FILE, so no credential ever
appears in the pod spec or the environment. These render the projected `sources` lists:
the Kafka ones (worker and topics Job) and the notification ones (worker only).
*/}}
{{- define "bouncewatch.kafkaCredentialSources" -}}
{{- $v := .Values -}}
{{- if $v.kafka.sasl.existingSecret }}
- secret:
    name: {{ $v.kafka.sasl.existingSecret }}
    items:
      - key: {{ $v.kafka.sasl.passwordKey }}
        path: kafka/sasl-password
{{- end }}
{{- if and $v.kafka.tls.existingSecret (or $v.kafka.tls.caKey $v.kafka.tls.certKey) }}
- secret:
    name: {{ $v.kafka.tls.existingSecret }}
    items:
      {{- if $v.kafka.tls.caKey }}
      - key: {{ $v.kafka.tls.caKey }}
        path: kafka/ca.crt
      {{- end }}
      {{- if $v.kafka.tls.certKey }}
      - key: {{ $v.kafka.tls.certKey }}
        path: kafka/tls.crt
      - key: {{ $v.kafka.tls.keyKey }}
        path: kafka/tls.key
      {{- end }}
{{- end }}
{{- end -}}

{{- define "bouncewatch.notifyCredentialSources" -}}
{{- $v := .Values -}}
{{- if and $v.slack.existingSecret (or $v.slack.tokenKey $v.slack.webhookUrlKey) }}
- secret:
    name: {{ $v.slack.existingSecret }}
    items:
      {{- if $v.slack.tokenKey }}
      - key: {{ $v.slack.tokenKey }}
        path: slack/token
      {{- end }}
      {{- if $v.slack.webhookUrlKey }}
      - key: {{ $v.slack.webhookUrlKey }}
        path: slack/webhook-url
      {{- end }}
{{- end }}
{{- if $v.smtp.existingSecret }}
- secret:
    name: {{ $v.smtp.existingSecret }}
    items:
      - key: {{ $v.smtp.passwordKey }}
        path: smtp/password
{{- end }}
{{- end -}}

{{/* The credential sources a pod needs. Call with (dict "context" $ "kafkaOnly" bool). */}}
{{- define "bouncewatch.credentialSources" -}}
{{- include "bouncewatch.kafkaCredentialSources" .context -}}
{{- if not .kafkaOnly -}}
{{- include "bouncewatch.notifyCredentialSources" .context -}}
{{- end -}}
{{- end -}}

{{/*
File mode of the credential files: group-readable only when the pod has an fsGroup (the
files then belong to that group); world-readable inside the single-user container
otherwise, or the non-root worker could not read them.
*/}}
{{- define "bouncewatch.credentialsMode" -}}
{{- if and .Values.podSecurityContext.enabled .Values.podSecurityContext.fsGroup -}}
288
{{- else -}}
292
{{- end -}}
{{- end -}}

{{/* The credentials volume, when some Secret is configured. Same arguments as above. */}}
{{- define "bouncewatch.credentialsVolume" -}}
{{- $sources := include "bouncewatch.credentialSources" . -}}
{{- if $sources -}}
- name: credentials
  projected:
    defaultMode: {{ include "bouncewatch.credentialsMode" .context }}
    sources:
      {{- $sources | trim | nindent 6 }}
{{- end -}}
{{- end -}}

{{- define "bouncewatch.credentialsVolumeMount" -}}
{{- if include "bouncewatch.credentialSources" . -}}
- name: credentials
  mountPath: {{ include "bouncewatch.secretsMountPath" .context }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
Environment shared by the worker and the topics Job: Kafka connection, app id, topics.
Secrets appear only as *_FILE paths into the credentials volume.
*/}}
{{- define "bouncewatch.kafkaEnv" -}}
{{- $v := .Values -}}
{{- $secrets := include "bouncewatch.secretsMountPath" . -}}
- name: BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: BOUNCEWATCH_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if $v.kafka.sasl.mechanism }}
- name: BOUNCEWATCH_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
{{- end }}
{{- if $v.kafka.sasl.username }}
- name: BOUNCEWATCH_KAFKA_SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
{{- end }}
{{- if $v.kafka.sasl.existingSecret }}
- name: BOUNCEWATCH_KAFKA_SASL_PASSWORD_FILE
  value: {{ printf "%s/kafka/sasl-password" $secrets | quote }}
{{- end }}
{{- if and $v.kafka.tls.existingSecret $v.kafka.tls.caKey }}
- name: BOUNCEWATCH_KAFKA_SSL_CAFILE
  value: {{ printf "%s/kafka/ca.crt" $secrets | quote }}
{{- end }}
{{- if and $v.kafka.tls.existingSecret $v.kafka.tls.certKey }}
- name: BOUNCEWATCH_KAFKA_SSL_CERTFILE
  value: {{ printf "%s/kafka/tls.crt" $secrets | quote }}
- name: BOUNCEWATCH_KAFKA_SSL_KEYFILE
  value: {{ printf "%s/kafka/tls.key" $secrets | quote }}
{{- end }}
- name: BOUNCEWATCH_APP_ID
  value: {{ $v.config.appId | quote }}
- name: BOUNCEWATCH_TOPIC_INPUT
  value: {{ $v.config.topics.input | quote }}
- name: BOUNCEWATCH_TOPIC_DEAD_LETTER
  value: {{ $v.config.topics.deadLetter | quote }}
- name: BOUNCEWATCH_TOPIC_ALERTS
  value: {{ $v.config.topics.alerts | quote }}
- name: BOUNCEWATCH_TOPIC_SILENCES
  value: {{ $v.config.topics.silences | quote }}
- name: BOUNCEWATCH_TOPIC_PARTITIONS
  value: {{ $v.config.topics.partitions | quote }}
- name: BOUNCEWATCH_TOPIC_REPLICATION_FACTOR
  value: {{ $v.config.topics.replicationFactor | quote }}
- name: BOUNCEWATCH_LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: BOUNCEWATCH_LOG_FORMAT
  value: {{ $v.config.logFormat | quote }}
{{- end -}}

{{/* The worker's environment: the shared part plus state, web, rules and notifications. */}}
{{- define "bouncewatch.workerEnv" -}}
{{- $v := .Values -}}
{{- $secrets := include "bouncewatch.secretsMountPath" . -}}
{{ include "bouncewatch.kafkaEnv" . }}
{{- if $v.staticMembership.enabled }}
- name: BOUNCEWATCH_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
- name: BOUNCEWATCH_CREATE_TOPICS
  value: {{ and $v.config.createTopics (not $v.topicsJob.enabled) | quote }}
- name: BOUNCEWATCH_INPUT_FORMAT
  value: {{ $v.config.inputFormat | quote }}
- name: BOUNCEWATCH_ISP_UNKNOWN
  value: {{ $v.config.isp.unknown | quote }}
- name: BOUNCEWATCH_MX_LOOKUP
  value: {{ $v.config.isp.mxLookup | quote }}
{{- if $v.config.isp.mxNameservers }}
- name: BOUNCEWATCH_MX_NAMESERVERS
  value: {{ $v.config.isp.mxNameservers | quote }}
{{- end }}
- name: BOUNCEWATCH_INGEST_BATCH_MESSAGES
  value: {{ $v.config.ingest.batchMessages | int | quote }}
- name: BOUNCEWATCH_INGEST_BATCH_SECONDS
  value: {{ $v.config.ingest.batchSeconds | quote }}
- name: BOUNCEWATCH_STORE
  value: {{ $v.config.store | quote }}
- name: BOUNCEWATCH_DATA_DIR
  value: {{ $v.persistence.mountPath | quote }}
- name: BOUNCEWATCH_WEB_HOST
  value: "0.0.0.0"
- name: BOUNCEWATCH_WEB_PORT
  value: {{ $v.containerPorts.http | quote }}
{{- if include "bouncewatch.rulesEnabled" . }}
- name: BOUNCEWATCH_RULES_FILE
  value: {{ printf "%s/%s" $v.rules.mountPath $v.rules.key | quote }}
{{- end }}
{{- if include "bouncewatch.notificationsEnabled" . }}
- name: BOUNCEWATCH_NOTIFY_FILE
  value: {{ printf "%s/%s" $v.notifications.mountPath $v.notifications.key | quote }}
{{- end }}
- name: BOUNCEWATCH_NOTIFICATION_LOG_RETENTION
  value: {{ $v.notifications.logRetention | quote }}
{{- if $v.slack.channel }}
- name: BOUNCEWATCH_SLACK_CHANNEL
  value: {{ $v.slack.channel | quote }}
{{- end }}
{{- if and $v.slack.existingSecret $v.slack.tokenKey }}
- name: BOUNCEWATCH_SLACK_TOKEN_FILE
  value: {{ printf "%s/slack/token" $secrets | quote }}
{{- end }}
{{- if and $v.slack.existingSecret $v.slack.webhookUrlKey }}
- name: BOUNCEWATCH_SLACK_WEBHOOK_URL_FILE
  value: {{ printf "%s/slack/webhook-url" $secrets | quote }}
{{- end }}
{{- if $v.smtp.host }}
- name: BOUNCEWATCH_SMTP_HOST
  value: {{ $v.smtp.host | quote }}
- name: BOUNCEWATCH_SMTP_PORT
  value: {{ $v.smtp.port | quote }}
- name: BOUNCEWATCH_SMTP_SECURITY
  value: {{ $v.smtp.security | quote }}
- name: BOUNCEWATCH_SMTP_FROM
  value: {{ $v.smtp.from | quote }}
{{- if $v.smtp.username }}
- name: BOUNCEWATCH_SMTP_USERNAME
  value: {{ $v.smtp.username | quote }}
{{- end }}
{{- if $v.smtp.to }}
- name: BOUNCEWATCH_SMTP_TO
  value: {{ $v.smtp.to | quote }}
{{- end }}
- name: BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH
  value: {{ $v.smtp.allowPlaintextAuth | quote }}
{{- end }}
{{- if $v.smtp.existingSecret }}
- name: BOUNCEWATCH_SMTP_PASSWORD_FILE
  value: {{ printf "%s/smtp/password" $secrets | quote }}
{{- end }}
{{- with $v.extraEnvVars }}
{{ include "bouncewatch.tplvalues.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/* Fail early, with a clear message, on values that cannot work together. */}}
{{- define "bouncewatch.validateValues" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol -}}
{{- if not (and $v.kafka.sasl.mechanism $v.kafka.sasl.username $v.kafka.sasl.existingSecret) -}}
{{- $errors = append $errors "kafka.securityProtocol is SASL_*: set kafka.sasl.mechanism, kafka.sasl.username and kafka.sasl.existingSecret (a Secret holding the password)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.kafka.tls.existingSecret (not (or (eq $v.kafka.securityProtocol "SSL") (eq $v.kafka.securityProtocol "SASL_SSL"))) -}}
{{- $errors = append $errors "kafka.tls.existingSecret is set but kafka.securityProtocol is not SSL or SASL_SSL" -}}
{{- end -}}
{{- if and $v.kafka.tls.certKey (not $v.kafka.tls.keyKey) -}}
{{- $errors = append $errors "kafka.tls.certKey needs kafka.tls.keyKey (the client private key)" -}}
{{- end -}}
{{- if and $v.rules.inline $v.rules.existingConfigMap -}}
{{- $errors = append $errors "set rules.inline or rules.existingConfigMap, not both" -}}
{{- end -}}
{{- if and $v.notifications.inline $v.notifications.existingConfigMap -}}
{{- $errors = append $errors "set notifications.inline or notifications.existingConfigMap, not both" -}}
{{- end -}}
{{- if and (include "bouncewatch.rulesEnabled" .) (include "bouncewatch.notificationsEnabled" .) (eq (clean $v.rules.mountPath) (clean $v.notifications.mountPath)) -}}
{{- $errors = append $errors "rules.mountPath and notifications.mountPath must differ (each ConfigMap is mounted on a directory of its own)" -}}
{{- end -}}
{{- if and $v.slack.existingSecret (not (or $v.slack.tokenKey $v.slack.webhookUrlKey)) -}}
{{- $errors = append $errors "slack.existingSecret needs slack.tokenKey and/or slack.webhookUrlKey" -}}
{{- end -}}
{{- if and $v.smtp.existingSecret (not $v.smtp.host) -}}
{{- $errors = append $errors "smtp.existingSecret is set but smtp.host is empty" -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nbouncewatch: invalid values:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
