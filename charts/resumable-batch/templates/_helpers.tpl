{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "resumable-batch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else the release name, with the
chart name appended unless the release name already contains it.
*/}}
{{- define "resumable-batch.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "resumable-batch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels a selector uses: they never change over the release's life. */}}
{{- define "resumable-batch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "resumable-batch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The recommended labels (app.kubernetes.io/*, helm.sh/chart) plus commonLabels, for
every object. Pass the component as "component" in a dict with "context".
*/}}
{{- define "resumable-batch.labels" -}}
{{- $ctx := .context -}}
helm.sh/chart: {{ include "resumable-batch.chart" $ctx }}
{{ include "resumable-batch.selectorLabels" $ctx }}
app.kubernetes.io/component: {{ .component | default "operator" }}
app.kubernetes.io/part-of: resumable-batch
{{- if $ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "resumable-batch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "resumable-batch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "resumable-batch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The name of the Lease the replicas elect their leader with (in the release namespace).
Leader election is always on, so that scaling up (helm or kubectl) is safe.
*/}}
{{- define "resumable-batch.leaseName" -}}
{{- include "resumable-batch.fullname" . }}
{{- end }}

{{/*
The namespaced rules the operator needs wherever it manages batches: in a ClusterRole
when it watches every namespace, in a Role per namespace otherwise.
*/}}
{{- define "resumable-batch.namespacedRules" -}}
# The batches: watched, annotated and finalized by kopf, deleted after their TTL.
- apiGroups: ["resumable.dev"]
  resources: ["resumablebatches"]
  verbs: ["get", "list", "watch", "patch", "update", "delete"]
- apiGroups: ["resumable.dev"]
  resources: ["resumablebatches/status"]
  verbs: ["get", "patch", "update"]
# Owner references with blockOwnerDeletion on the worker pods and their RBAC need this
# where the OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["resumable.dev"]
  resources: ["resumablebatches/finalizers"]
  verbs: ["update"]
# The worker pods: one per attempt.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Events on the batches (kopf posts core events; events.k8s.io for newer clients).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Each batch's own ServiceAccount, and a Role + RoleBinding that let it read that batch
# and patch only its status (the operator holds those rights itself, so no escalate or
# bind). patch on roles narrows a Role made by an earlier version that granted more.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["get", "create"]
{{- if .Values.kueue.enabled }}
# Kueue (kueue.enabled): each queued batch's Workload, created, watched, finished
# (status) and deleted by the operator.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads/status"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/*
Kueue (kueue.enabled), cluster-scoped reads: the admitted ResourceFlavor's node labels
and tolerations, and the priority class a Workload takes its priority from.
*/}}
{{- define "resumable-batch.kueueClusterRules" -}}
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["resourceflavors", "workloadpriorityclasses"]
  verbs: ["get"]
- apiGroups: ["scheduling.k8s.io"]
  resources: ["priorityclasses"]
  verbs: ["get"]
{{- end }}
