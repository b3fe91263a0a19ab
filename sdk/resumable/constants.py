"""Names the ResumableBatch API shares: labels, conditions, reasons, events, worker variables.

Defined once, beside the API models (:mod:`resumable.v1alpha1`), in the manner of
JobSet's ``pkg/constants``: the operator's decisions (``resumable_core``), the
objects it builds, the local runner, the CLI and the SDK import them from here.
A condition reason used with a fixed message is paired with it (``REASON_X`` and
``MESSAGE_X``). The values are API: `kubectl get`, events and alerts match them,
so a value never changes; a name may.
"""

from __future__ import annotations

from typing import Final

# ----------------------------------------------------------------------- labels

#: On every object made for a batch (pods, worker RBAC): the batch's name.
LABEL_BATCH: Final = "resumable.dev/batch"
#: On a worker pod: its attempt number.
LABEL_ATTEMPT: Final = "resumable.dev/attempt"
#: On a parallel worker's pod (spec.parallelism > 1): its slot number.
LABEL_SLOT: Final = "resumable.dev/slot"
#: On a worker pod, when the batch has a spec.runId: the run it works for.
LABEL_RUN_ID: Final = "resumable.dev/run-id"
#: On a batch: the Kueue LocalQueue that admits it (Kueue's own label). Without it the
#: operator makes no Kueue call at all.
LABEL_QUEUE_NAME: Final = "kueue.x-k8s.io/queue-name"
#: On a batch: the Kueue WorkloadPriorityClass of its Workload (Kueue's own label).
LABEL_PRIORITY_CLASS: Final = "kueue.x-k8s.io/priority-class"
#: The recommended label naming the tool that manages an object.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
#: Its value on the objects the operator makes; also the Events' reporting component.
MANAGED_BY: Final = "resumable-batch-operator"

# ------------------------------------------------------------------- conditions

SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
SUSPENDED: Final = "Suspended"
PROGRESSING: Final = "Progressing"
#: The four conditions every batch has, in the order status lists them.
CONDITION_TYPES: Final = (PROGRESSING, SUSPENDED, SUCCEEDED, FAILED)
#: Present (True) only while the worker's item count differs from spec.totalItems.
TOTAL_ITEMS_MISMATCH: Final = "TotalItemsMismatch"

# ------------------------------------------------------------------ phases
# status.phase is a display column derived from the conditions; read conditions.

PHASE_PENDING: Final = "Pending"
PHASE_RUNNING: Final = "Running"
PHASE_BACKING_OFF: Final = "BackingOff"
PHASE_SUSPENDED: Final = "Suspended"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
#: Outside its spec.window: the worker is stopped until the window opens.
PHASE_WAITING: Final = "Waiting"
#: Labelled with a Kueue queue and not admitted (yet, or again after an eviction):
#: no worker runs.
PHASE_QUEUED: Final = "Queued"
#: The phases `resumable run` stops at (with no worker left running).
PHASES_AT_REST: Final = (PHASE_SUCCEEDED, PHASE_FAILED, PHASE_SUSPENDED)

# ------------------------------------------------------- condition reasons (CamelCase)

#: First sight: nothing judged yet.
REASON_RECONCILING: Final = "Reconciling"
MESSAGE_NOT_SUCCEEDED_YET: Final = "The batch has not finished."
MESSAGE_NOT_FAILED: Final = "The batch has not failed."
MESSAGE_STARTING: Final = "Starting."
#: An attempt's pod was created at item 1 (a first attempt, a rerun, nothing saved yet).
REASON_POD_CREATED: Final = "PodCreated"
REASON_RUNNING: Final = "Running"
REASON_BACKOFF: Final = "BackoffWaiting"
#: An attempt's pod was created to go on from the checkpoint (also its event's reason).
REASON_RESUMED: Final = "Resumed"
REASON_COMPLETED: Final = "Completed"
#: Failed's message when the batch succeeded.
MESSAGE_SUCCEEDED: Final = "The batch succeeded."
REASON_MAX_RESTARTS: Final = "MaxRestartsExceeded"
REASON_NEVER_RETRY: Final = "NeverRetryExitCode"
REASON_POISON: Final = "PoisonItem"
#: The worker exited EXIT_USAGE: misuse the SDK detected, which no retry gets past.
REASON_USAGE_ERROR: Final = "UsageError"
#: The worker's command could not be started (exec failed: not found, not a
#: program, arguments and environment too long): the runtime's StartError.
REASON_START_FAILED: Final = "StartFailed"
#: Succeeded's message when the batch failed, whatever the reason.
MESSAGE_FAILED: Final = "The batch failed."
REASON_SUSPENDED: Final = "SuspendedBySpec"
MESSAGE_SUSPENDED: Final = "spec.suspend is true; the worker was stopped."
REASON_NOT_SUSPENDED: Final = "NotSuspended"
MESSAGE_NOT_SUSPENDED: Final = "The batch is not suspended."
MESSAGE_UNSUSPENDED: Final = "Resumed by spec.suspend=false."
REASON_RERUN: Final = "RerunRequested"
MESSAGE_RERUN: Final = "Rerun requested."
#: spec.retrySkipped changed on a batch that succeeded: its skipped items go again.
REASON_RETRY_SKIPPED: Final = "RetrySkippedRequested"
MESSAGE_RETRY_SKIPPED: Final = "Retrying the skipped items."
#: Suspended (True) and Progressing (False) outside spec.window: the worker is stopped.
REASON_OUTSIDE_WINDOW: Final = "OutsideWindow"
#: Suspended (False) once the window is open again.
REASON_WINDOW_OPEN: Final = "WindowOpen"
#: Suspended (True) and Progressing (False) while Kueue has not admitted the batch's
#: Workload (or evicted it): no worker runs.
REASON_QUEUED: Final = "Queued"
#: Suspended (False) once Kueue admitted the Workload (also its event's reason).
REASON_ADMITTED: Final = "Admitted"
#: A recurring batch (spec.window.recurrence) started a new run (also its event's reason).
REASON_SCHEDULED_RUN: Final = "ScheduledRun"
MESSAGE_SCHEDULED_RUN: Final = "A new scheduled run started."
#: The worker exited 0 before its checkpoint said every item was done (an event).
REASON_NOT_FINISHED: Final = "NotFinished"
REASON_RESTARTS_RAISED: Final = "MaxRestartsRaised"
#: Succeeded's message while a reopened batch goes on.
MESSAGE_RETRYING: Final = "Retrying."
#: The API server refused the worker pod (or its ServiceAccount, Role, RoleBinding).
REASON_POD_CREATE_FAILED: Final = "PodCreateFailed"
#: Progressing while a refusal that may pass (403, 429, 5xx) is retried: no pod yet.
REASON_POD_CREATE_RETRYING: Final = "PodCreateRetrying"
#: The Warning event, and the condition's reason, when the counts differ.
REASON_TOTAL_ITEMS_MISMATCH: Final = "TotalItemsMismatch"
REASON_WORKER_COUNT: Final = "WorkerCountDiffers"
#: A batch failed by a refused pod, a never-retry exit code or a poison item goes
#: on from its checkpoint once its spec is edited.
REASON_SPEC_CHANGED: Final = "SpecChanged"
#: Why a batch failed by a refused pod creates it again.
MESSAGE_SPEC_CHANGED_CREATE_AGAIN: Final = "The spec changed: creating the worker pod again."

# ---------------------------------------------------------------- event reasons
# Events also use the condition reasons above (Completed, PodCreateFailed, ...);
# these are the ones no condition carries.

EVENT_ACCEPTED: Final = "Accepted"
EVENT_STARTED: Final = "Started"
EVENT_DISRUPTED: Final = "Disrupted"
EVENT_ITEM_SKIPPED: Final = "ItemSkipped"
EVENT_ATTEMPT_FAILED: Final = "AttemptFailed"
EVENT_SUSPENDED: Final = "Suspended"
#: spec.parallelism was raised while one worker ran: it is stopped, the workers share the rest.
EVENT_PARALLELISM_CHANGED: Final = "ParallelismChanged"
#: The window closed on a running worker: it is told to stop.
EVENT_WINDOW_CLOSED: Final = "WindowClosed"
#: Outside the window with no worker running: the batch waits until it opens.
EVENT_WAITING: Final = "Waiting"
#: Kueue evicted the batch's Workload (preemption, deactivation, a stopped queue):
#: the workers are told to stop; the message is Kueue's, naming who preempted it.
EVENT_EVICTED: Final = "Evicted"
#: Labelled with a Kueue queue: the batch waits for its Workload's admission.
EVENT_QUEUED: Final = "Queued"

# ------------------------------------------------ disruptions (not counted)
# How a worker's end that is not its own doing is named (Outcome reasons, the
# Disrupted event's message, the restarts metric's label).
#: The pod vanished or was deleted by someone (kubectl delete pod, a drain).
DISRUPTION_POD_DELETED: Final = "PodDeleted"
#: Its node is gone or unreachable (pod phase Unknown, or stuck past its deletion).
DISRUPTION_NODE_LOST: Final = "NodeLost"
#: The pod condition Kubernetes sets on pods it is about to disrupt.
DISRUPTION_TARGET: Final = "DisruptionTarget"
#: A disruption that named no reason.
DISRUPTION_UNNAMED: Final = "Disruption"
#: Pod status reasons that mean the pod was ended from outside.
POD_DISRUPTION_REASONS: Final = ("Evicted", "Preempting", DISRUPTION_NODE_LOST, "Terminated")

# ------------------------------------------- worker environment (RESUMABLE_*)
# Injected by the operator into every worker container (and by `resumable run`
# into its subprocesses); read by the SDK's settings.

ENV_PREFIX: Final = "RESUMABLE_"
ENV_BATCH_NAME: Final = "RESUMABLE_BATCH_NAME"
ENV_NAMESPACE: Final = "RESUMABLE_NAMESPACE"
ENV_START_INDEX: Final = "RESUMABLE_START_INDEX"
ENV_ATTEMPT: Final = "RESUMABLE_ATTEMPT"
ENV_RUN_ID: Final = "RESUMABLE_RUN_ID"
#: "kube" in a pod, "local" under `resumable run`.
ENV_STORE: Final = "RESUMABLE_STORE"
#: The checkpoint policy (spec.checkpoint) as JSON.
ENV_CHECKPOINT: Final = "RESUMABLE_CHECKPOINT"
#: spec.totalItems, when set.
ENV_TOTAL_ITEMS: Final = "RESUMABLE_TOTAL_ITEMS"
#: "1" for an attempt after an unexplained death: the worker marks each item in flight.
ENV_CAREFUL: Final = "RESUMABLE_CAREFUL"
#: The local store's directory (`resumable run` only).
ENV_DIR: Final = "RESUMABLE_DIR"
# Set by the user in the pod template (or the shell), never injected:
#: Where item outputs go (a directory, e.g. a mounted volume).
ENV_OUTPUT_DIR: Final = "RESUMABLE_OUTPUT_DIR"
#: The worker id saved with each checkpoint (default: hostname-pid).
ENV_WORKER_ID: Final = "RESUMABLE_WORKER_ID"
#: A parallel worker's slot (spec.parallelism > 1): it claims chunks for that slot.
ENV_WORKER_SLOT: Final = "RESUMABLE_WORKER_SLOT"
#: spec.parallelism, for a parallel worker's default chunk size.
ENV_PARALLELISM: Final = "RESUMABLE_PARALLELISM"
#: spec.chunkSize, when set: items a parallel worker claims at a time.
ENV_CHUNK_SIZE: Final = "RESUMABLE_CHUNK_SIZE"
#: spec.outputs.s3 or spec.outputs.status as JSON ({"s3": {...}} or {"status": {...}}):
#: where outputs go when not to a directory. Injected by the operator and `resumable run`.
ENV_OUTPUTS: Final = "RESUMABLE_OUTPUTS"
#: "1" lets a run resume against a changed item list.
ENV_ALLOW_CHANGED_ITEMS: Final = "RESUMABLE_ALLOW_CHANGED_ITEMS"

# ------------------------------------------------------------------ exit codes

#: A worker's exit code for a usage error (sysexits.h's EX_USAGE): deterministic
#: misuse the SDK detected (a changed item list, run.context over its budget, an
#: item with no stable fingerprint, an invalid RESUMABLE_* setting). The SDK exits
#: with it when such an error (resumable.errors.UsageError) is not caught; the
#: operator and `resumable run` fail the batch at once (reason UsageError, the
#: cause the worker saved in the message), never retrying it.
EXIT_USAGE: Final = 64
#: Container termination reasons that mean the command never started (containerd's
#: StartError, Docker's ContainerCannotRun; the local runner reports StartError).
START_ERROR_REASONS: Final = ("StartError", "ContainerCannotRun")
