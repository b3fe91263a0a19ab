"""The ResumableBatch API, version v1alpha1: the single source of truth.

These pydantic models define what users write (``spec``) and what the operator
and the SDK report (``status``). The CRD in ``crds/`` is generated from them by
:mod:`resumable._crd` (``make crds``), and the operator, the local runner and the
CLI parse every manifest through them, so a manifest is judged the same way
everywhere: by the API server, by ``resumable run`` and by the tests.

Field names are camelCase on the wire (as Kubernetes expects) and snake_case in
Python.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "resumable.dev"
VERSION = "v1alpha1"
KIND = "ResumableBatch"
PLURAL = "resumablebatches"
SINGULAR = "resumablebatch"
SHORT_NAMES = ["rb"]
API_VERSION = f"{GROUP}/{VERSION}"

#: Upper bound on the serialised size of ``status.checkpoint.context`` (bytes).
MAX_CONTEXT_BYTES = 4096
#: Upper bound on the completed-items ranges text in status.
MAX_COMPLETED_CHARS = 8192
#: Upper bound on the number of skipped items kept in status.
MAX_SKIPPED_RECORDED = 100
#: Upper bound on an error message kept in status.
MAX_ERROR_CHARS = 512
#: Upper bound on spec.parallelism: every worker has an entry in status.workers, and
#: every worker patches the one batch object, so both the status and the write rate
#: on that object grow with it (docs/design.md, "Parallel workers").
MAX_PARALLELISM = 64


def _preserve_unknown(schema: dict[str, Any]) -> None:
    """Mark a schema node as free-form for the API server (structural schema)."""
    schema["x-kubernetes-preserve-unknown-fields"] = True


class _Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, typos refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )


class _OpenModel(_Model):
    """A model that keeps fields it does not know (pod template parts)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_preserve_unknown)


# --------------------------------------------------------------------------- spec


class EnvVar(_OpenModel):
    """One environment variable of a container (``valueFrom`` is kept as written)."""

    name: str = Field(min_length=1, description="Name of the environment variable.")
    value: str | None = Field(default=None, description="Literal value.")


class Container(_OpenModel):
    """The parts of a container the operator and the local runner read; the rest is kept."""

    name: str = Field(min_length=1, description="Container name.")
    image: str | None = Field(
        default=None, description="Container image (ignored by `resumable run`)."
    )
    command: list[str] = Field(default_factory=list, description="Entrypoint.")
    args: list[str] = Field(default_factory=list, description="Arguments to the entrypoint.")
    env: list[EnvVar] = Field(default_factory=list, description="Environment variables.")


class PodSpec(_OpenModel):
    """A pod spec; only ``containers`` is checked, every other field is passed through."""

    containers: list[Container] = Field(
        min_length=1, description="Containers of the worker pod; the first one runs the batch."
    )
    service_account_name: str | None = Field(
        default=None,
        description="Service account for the worker. When empty the operator creates one "
        "that may only read and patch this batch's status.",
    )
    restart_policy: Literal["Never"] | None = Field(
        default=None,
        description="Always Never: the operator, not the kubelet, restarts workers.",
    )
    termination_grace_period_seconds: int | None = Field(
        default=None, ge=0, description="Time the worker gets to flush its checkpoint on SIGTERM."
    )


class PodTemplate(_Model):
    """A pod template: the worker the operator starts for each attempt."""

    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Labels and annotations for the worker pods.",
        json_schema_extra=_preserve_unknown,
    )
    spec: PodSpec = Field(description="The worker pod's spec.")


class CheckpointPolicy(_Model):
    """When the SDK writes the checkpoint: whichever trigger fires first, at an item boundary."""

    every_items: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Write after this many newly completed items."
    )
    every_seconds: float = Field(
        default=1.0,
        gt=0,
        le=86_400,
        description="Write at the first item boundary this many seconds after the last write.",
    )
    cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="Write once the unsaved work's recorded cost passes this many US dollars.",
    )
    min_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Never write more often than this, whatever the triggers say "
        "(the final write at exit always happens).",
    )


#: A Kubernetes label value (runId labels the worker pods), or empty.
RUN_ID_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: The longest batch name: it is the value of the pods' resumable.dev/batch label.
MAX_NAME_LENGTH = 63


class Backoff(_Model):
    """Exponential backoff between attempts."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxSeconds) || !has(self.initialSeconds) || "
                    "self.maxSeconds >= self.initialSeconds",
                    "message": "backoff.maxSeconds must be greater than or equal to "
                    "backoff.initialSeconds (2 when not set)",
                }
            ]
        }
    )

    initial_seconds: float = Field(
        default=2.0, ge=0, le=3600, description="Delay before the first restart."
    )
    max_seconds: float = Field(default=300.0, ge=0, le=86_400, description="Longest delay.")
    factor: float = Field(default=2.0, ge=1, le=10, description="Growth of the delay per restart.")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> Backoff:
        if self.max_seconds < self.initial_seconds:
            raise ValueError(
                "backoff.maxSeconds must be greater than or equal to backoff.initialSeconds"
            )
        return self

    def delay(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based)."""
        if restart <= 0:
            return 0.0
        return float(min(self.max_seconds, self.initial_seconds * self.factor ** (restart - 1)))


class RetryPolicy(_Model):
    """How failures are retried."""

    max_restarts: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="Restarts allowed after failures. Disruptions (eviction, preemption) "
        "do not count. Raising it above status.restarts makes a batch that failed for want "
        "of restarts go on from its checkpoint.",
    )
    backoff: Backoff = Field(default_factory=Backoff, description="Delay between attempts.")
    never_retry_exit_codes: list[int] = Field(
        default_factory=list,
        max_length=32,
        description="Exit codes that fail the batch at once.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 255}},
    )
    max_item_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Attempts that may die at the same item with no progress before it "
        "counts as a poison item. A death counts once the attempt said it was at that item, "
        "so one more may die when the first did not.",
    )
    on_poison_item: Literal["Skip", "Fail"] = Field(
        default="Skip",
        description="Skip: record the item with its last error and go on. Fail: fail the batch.",
    )

    @model_validator(mode="after")
    def _exit_codes_in_range(self) -> RetryPolicy:
        for code in self.never_retry_exit_codes:
            if not 1 <= code <= 255:
                raise ValueError(f"neverRetryExitCodes: {code} is not an exit code in 1..255")
        return self


#: Item outputs kept in status (spec.outputs.status) may take at most this many bytes in
#: all, as JSON: far below etcd's 1.5 MiB object limit, so status stays small.
MAX_INLINE_OUTPUT_BYTES = 16384


class DirectoryOutputsSpec(_Model):
    """Outputs as one JSON file per item under a directory (a mounted volume in a pod)."""

    path: str = Field(
        min_length=1,
        description="The directory in the worker's container (RESUMABLE_OUTPUT_DIR); "
        "`resumable run` maps paths under a volumeMount into its state directory.",
    )


class S3CredentialsSecret(_Model):
    """A Secret in the batch's namespace whose keys the operator injects as AWS_* variables."""

    name: str = Field(min_length=1, max_length=253, description="The Secret's name.")
    access_key_id_key: str = Field(
        default="AWS_ACCESS_KEY_ID", min_length=1, description="Its key holding the access key id."
    )
    secret_access_key_key: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        min_length=1,
        description="Its key holding the secret access key.",
    )
    session_token_key: str | None = Field(
        default=None, description="Its key holding a session token, if there is one."
    )


class S3OutputsSpec(_Model):
    """Outputs as one object per item in an S3-compatible bucket."""

    bucket: str = Field(min_length=3, max_length=63, description="The bucket (it must exist).")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^/]+(/.*)?$",
        description="The server's URL, e.g. https://s3.eu-west-1.amazonaws.com or "
        "http://minio.storage:9000; unset: AWS for the region.",
    )
    region: str = Field(default="us-east-1", min_length=1, description="The bucket's region.")
    prefix: str = Field(
        default="",
        max_length=512,
        pattern=r"^([^/].*[^/]|[^/])?$",
        description="Keys start with it: <prefix>/<namespace>/<name>/<uid>/<runId>/outputs/"
        "<index>.json (no leading or trailing '/').",
    )
    credentials_secret: S3CredentialsSecret | None = Field(
        default=None,
        description="Where the worker's credentials come from; unset: the pod's environment "
        "(AWS_* variables, a web identity token as IRSA mounts it, instance metadata).",
    )


class InlineOutputsSpec(_Model):
    """Tiny outputs kept in the batch's status, written with the checkpoint that covers them."""

    max_bytes: int = Field(
        default=4096,
        ge=1,
        le=MAX_INLINE_OUTPUT_BYTES,
        description="Budget for every output together, as JSON; a run that would pass it "
        f"fails with an error naming it (at most {MAX_INLINE_OUTPUT_BYTES}).",
    )


class OutputsSpec(_Model):
    """Where item outputs and step results go: one of directory, s3 or status."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.directory), has(self.s3), has(self.status)]"
                    ".filter(x, x).size() <= 1",
                    "message": "outputs: set at most one of directory, s3 and status",
                }
            ]
        }
    )

    directory: DirectoryOutputsSpec | None = Field(
        default=None, description="A directory (a mounted volume): the default."
    )
    s3: S3OutputsSpec | None = Field(default=None, description="An S3-compatible bucket.")
    status: InlineOutputsSpec | None = Field(
        default=None, description="The batch's status, for tiny outputs only (one worker)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> OutputsSpec:
        if sum(x is not None for x in (self.directory, self.s3, self.status)) > 1:
            raise ValueError("outputs: set at most one of directory, s3 and status")
        return self


class ResumableBatchSpec(_Model):
    """What a user asks for: a worker, a list size, and how to checkpoint and retry."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.outputs) || !has(self.outputs.status) || "
                    "!has(self.parallelism) || self.parallelism <= 1",
                    "message": "outputs.status keeps outputs in the one checkpoint: it needs "
                    "parallelism 1 (use outputs.s3 or outputs.directory for parallel workers)",
                }
            ]
        }
    )

    template: PodTemplate = Field(description="The worker pod to run for each attempt.")
    total_items: int | None = Field(
        default=None, ge=0, description="Number of items; optional, the SDK can report it."
    )
    checkpoint: CheckpointPolicy = Field(
        default_factory=CheckpointPolicy, description="When the SDK writes checkpoints."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="How failures are retried.")
    suspend: bool = Field(
        default=False, description="True stops the worker gracefully; false resumes it."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the batch this long after it finished."
    )
    parallelism: int = Field(
        default=1,
        ge=1,
        le=MAX_PARALLELISM,
        description="Worker pods that run at once, each claiming chunks of items from a "
        f"shared pool (at most {MAX_PARALLELISM}). 1 runs one worker from the saved position, "
        "as RESUMABLE_START_INDEX says.",
    )
    chunk_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Items a worker claims at a time when parallelism > 1. Unset: about a "
        "tenth of each worker's share, at most 100, so fast workers take more chunks.",
    )
    outputs: OutputsSpec = Field(
        default_factory=OutputsSpec,
        description="Where item outputs and step results go: a directory (the default), "
        "an S3-compatible bucket, or the status for tiny values.",
    )
    retry_skipped: str = Field(
        default="",
        max_length=63,
        description="Changing it gives the skipped (poison) items another chance, without "
        "redoing any completed item (`resumable retry-skipped NAME` sets it).",
    )
    run_id: str = Field(
        default="",
        max_length=63,
        pattern=RUN_ID_PATTERN,
        description="Changing it starts a clean rerun from item 1. It labels the pods, so "
        "it is a label value: letters, digits, '-', '_' and '.', starting and ending with "
        "a letter or digit.",
    )

    @model_validator(mode="after")
    def _inline_outputs_one_worker(self) -> ResumableBatchSpec:
        if self.outputs.status is not None and self.parallelism > 1:
            raise ValueError(
                "outputs.status keeps outputs in the one checkpoint: it needs parallelism 1 "
                "(use outputs.s3 or outputs.directory for parallel workers)"
            )
        return self


# ------------------------------------------------------------------------- status


class Checkpoint(_Model):
    """The saved position, written by the SDK with every checkpoint."""

    next_index: int = Field(default=0, ge=0, description="The first item not done yet.")
    completed: str = Field(
        default="",
        max_length=MAX_COMPLETED_CHARS,
        description='Completed item indices as ranges, e.g. "0-46,48".',
    )
    attempt: int = Field(
        default=0, ge=0, description="Fencing token: writes from older attempts are refused."
    )
    items_done: int = Field(default=0, ge=0, description="Items completed in this run.")
    tokens: int = Field(default=0, ge=0, description="Tokens used by completed items.")
    cost_usd: float = Field(default=0.0, ge=0, description="Cost of completed items (USD).")
    total_items: int | None = Field(
        default=None, ge=0, description="Item count, as the worker saw it."
    )
    fingerprint: str = Field(
        default="", max_length=128, description="Fingerprint of the item list."
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Runtime context: task and worker ids, attempt, iteration, user state.",
        json_schema_extra=_preserve_unknown,
    )
    last_error: str = Field(
        default="", max_length=MAX_ERROR_CHARS, description="Last item error the worker recorded."
    )
    last_error_index: int | None = Field(default=None, ge=0, description="The item that raised it.")
    inflight: int | None = Field(
        default=None,
        ge=0,
        description="In careful mode (after an unexplained death), the item being worked on.",
    )
    finished: bool = Field(
        default=False,
        description="True once every item is done: the position is cleared, the counts stay.",
    )
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="With spec.outputs.status: each covered item's output by its index "
        "(8 digits), written with the position that covers it; spec.outputs.status.maxBytes "
        "bounds them.",
        json_schema_extra=_preserve_unknown,
    )
    updated_at: str = Field(default="", description="When the worker last wrote (RFC 3339).")

    @field_validator("completed")
    @classmethod
    def _ranges(cls, value: str) -> str:
        """Index ranges a run can read back ("0-46,48"), not just any short string."""
        from resumable.ranges import IndexSet

        IndexSet.parse(value)  # ValueError names the bad part
        return value

    @field_validator("context")
    @classmethod
    def _known_context(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The context fields the SDK reads back have the types it reads them as."""
        for name in ("iteration", "redone", "attempt"):
            if name in value and (
                isinstance(value[name], bool) or not isinstance(value[name], int)
            ):
                raise ValueError(f"context.{name} must be an integer, not {value[name]!r}")
        if "user" in value and not isinstance(value["user"], dict):
            raise ValueError(f"context.user must be an object, not {value['user']!r}")
        return value


class SkippedItem(_Model):
    """An item given up on after it kept killing the worker."""

    index: int = Field(ge=0, description="Item index.")
    attempts: int = Field(ge=0, description="Attempts that died at this item.")
    error: str = Field(default="", max_length=MAX_ERROR_CHARS, description="Its last error.")


class Condition(_Model):
    """A Kubernetes condition (api-conventions)."""

    type: str = Field(
        description="Succeeded, Failed, Suspended or Progressing; and TotalItemsMismatch while "
        "the worker's item count differs from spec.totalItems."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable message.")
    observed_generation: int | None = Field(default=None, description="Generation it reflects.")
    last_transition_time: str = Field(default="", description="When status last changed.")


class Stall(_Model):
    """Attempts that died at one position without progress (poison-item detection)."""

    index: int = Field(ge=0, description="The position the attempts died at.")
    attempts: int = Field(ge=0, description="How many attempts died there.")


class WorkerSlot(_Model):
    """One parallel worker's slot: its attempt, the chunk it holds, its work not folded yet."""

    # The worker of the slot's current attempt writes done, tokens, costUsd and
    # inflight (tested against attempt, its fencing token) and folds done into
    # checkpoint.completed when it claims its next chunk; the operator writes the rest.

    slot: int = Field(ge=0, lt=MAX_PARALLELISM, description="The worker's slot number.")
    attempt: int = Field(
        default=0, ge=0, description="Fencing token: writes from older attempts are refused."
    )
    pod: str = Field(default="", description="The pod of the slot's current attempt.")
    claim: str = Field(
        default="", max_length=64, description='The chunk the worker holds, e.g. "100-124".'
    )
    done: str = Field(
        default="",
        max_length=MAX_COMPLETED_CHARS,
        description="Items of its chunks it completed and has not folded into "
        "checkpoint.completed yet.",
    )
    tokens: int = Field(default=0, ge=0, description="Tokens of those items.")
    cost_usd: float = Field(default=0.0, ge=0, description="Cost of those items (USD).")
    inflight: int | None = Field(
        default=None, ge=0, description="In careful mode, the item being worked on."
    )
    restarts: int = Field(default=0, ge=0, description="Restarts of this slot after failures.")
    disruptions: int = Field(default=0, ge=0, description="Restarts after disruptions.")
    retry_after: str = Field(default="", description="Earliest time for its next attempt.")
    failed_at: str = Field(default="", description="When its last attempt failed.")
    last_failure: str = Field(default="", description="How its last attempt ended.")
    idle: bool = Field(
        default=False, description="True once the pool had no chunk left for it: it ended."
    )

    @field_validator("claim", "done")
    @classmethod
    def _ranges(cls, value: str) -> str:
        from resumable.ranges import IndexSet

        IndexSet.parse(value)
        return value


class ResumableBatchStatus(_Model):
    """What the operator and the SDK observed. A few KB by design: no per-item outputs."""

    checkpoint: Checkpoint = Field(default_factory=Checkpoint, description="The saved position.")
    progress: str = Field(default="", description='Display only, e.g. "47/200".')
    restarts: int = Field(default=0, ge=0, description="Restarts counted against maxRestarts.")
    disruptions: int = Field(
        default=0, ge=0, description="Restarts after evictions or preemptions."
    )
    skipped: list[SkippedItem] = Field(
        default_factory=list,
        max_length=MAX_SKIPPED_RECORDED,
        description="Poison items that were skipped, with their last error.",
    )
    stall: Stall | None = Field(default=None, description="Poison-item tracking.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, description="Current conditions."
    )
    observed_generation: int | None = Field(default=None, description="Last generation acted on.")
    run_id: str = Field(default="", description="The runId the checkpoint belongs to.")
    phase: str = Field(default="", description="For display only; read conditions instead.")
    active_pod: str = Field(default="", description="The worker pod of the current attempt.")
    retry_after: str = Field(default="", description="Earliest time for the next attempt.")
    failed_at: str = Field(default="", description="When the last attempt failed.")
    failed_spec: str = Field(
        default="",
        description="While the batch is Failed: a digest of the spec's template and retry "
        "rules (neverRetryExitCodes, maxItemAttempts, onPoisonItem) it failed under; an edit "
        "of them goes on from the checkpoint.",
    )
    last_failure: str = Field(
        default="", description='How the last attempt ended, e.g. "exit 137".'
    )
    workers: list[WorkerSlot] = Field(
        default_factory=list,
        max_length=MAX_PARALLELISM,
        description="Each parallel worker's slot (parallelism > 1), by slot number.",
    )
    retried_skipped: str = Field(
        default="", description="The spec.retrySkipped value last acted on."
    )
    start_time: str = Field(default="", description="When the batch first started.")
    completion_time: str = Field(default="", description="When the batch finished.")


class ObjectMeta(_OpenModel):
    """The parts of metadata this project reads."""

    name: str = Field(default="", description="Name.")
    namespace: str | None = Field(default=None, description="Namespace.")
    uid: str | None = Field(default=None, description="UID.")
    generation: int | None = Field(default=None, description="Generation.")
    deletion_timestamp: str | None = Field(
        default=None, description="Set while the batch is being deleted."
    )


class ResumableBatch(_Model):
    """A batch of items processed by workers that resume from their checkpoint."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["resumable.dev/v1alpha1"] = Field(
        default="resumable.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["ResumableBatch"] = Field(default="ResumableBatch")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ResumableBatchSpec
    status: ResumableBatchStatus = Field(default_factory=ResumableBatchStatus)

    def to_manifest(self) -> dict[str, Any]:
        """The object as Kubernetes JSON (camelCase, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
