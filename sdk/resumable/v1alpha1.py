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

from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
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
#: Upper bound on the run summaries a recurring batch keeps (spec.window.recurrence).
MAX_HISTORY = 10
#: The longest window: a week.
MAX_WINDOW_SECONDS = 7 * 86_400
#: The most bytes Linux takes in one argument or one NAME=value environment string
#: at exec (MAX_ARG_STRLEN), in a pod's container as on a laptop: a longer one
#: fails the worker's start with "Argument list too long". The schema refuses
#: container args, command and env values longer than this many characters.
MAX_EXEC_STRING_BYTES = 128 * 1024
#: ``spec.checkpoint.everySeconds`` when it is not set, by the store the checkpoint
#: goes to. A local store (one file) affords a write a second. In a cluster every
#: write is a status PATCH that etcd keeps and every watcher of the batch receives:
#: 1,000 running workers writing every 10 s are about 100 writes/s, the most
#: bench/operator_scale.py lets them cost (docs/design.md, "What a checkpoint
#: write costs a cluster"). The SIGTERM and end-of-batch writes happen either way.
DEFAULT_EVERY_SECONDS: dict[Literal["local", "kube"], float] = {"local": 1.0, "kube": 10.0}


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
    value: str | None = Field(
        default=None,
        max_length=MAX_EXEC_STRING_BYTES,
        description="Literal value: at most 128 KiB, what Linux takes in one environment "
        "string when it starts the worker.",
    )


#: One argument of a container's command line (at most MAX_EXEC_STRING_BYTES).
ExecString = Annotated[str, Field(max_length=MAX_EXEC_STRING_BYTES)]


class Container(_OpenModel):
    """The parts of a container the operator and the local runner read; the rest is kept."""

    name: str = Field(min_length=1, description="Container name.")
    image: str | None = Field(
        default=None, description="Container image (ignored by `resumable run`)."
    )
    command: list[ExecString] = Field(default_factory=list, description="Entrypoint.")
    args: list[ExecString] = Field(default_factory=list, description="Arguments to the entrypoint.")
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
    every_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Write at the first item boundary this many seconds after the last write. "
        "When not set: 10 in a cluster, 1 in a local run.",
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

    def resolved(self, store: Literal["local", "kube"]) -> CheckpointPolicy:
        """The policy with ``every_seconds`` set: as written, else the default for
        ``store`` (:data:`DEFAULT_EVERY_SECONDS`). The SDK resolves it when a run opens."""
        if self.every_seconds is not None:
            return self
        return self.model_copy(update={"every_seconds": DEFAULT_EVERY_SECONDS[store]})


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


#: A duration as cert-manager's Certificate writes ``duration`` and ``renewBefore``:
#: hours, minutes and seconds, each optional, in that order ("5h", "90m", "1h30m", "45s").
DURATION_PATTERN = r"^(?=[0-9])([0-9]+h)?([0-9]+m)?([0-9]+s)?$"


def parse_duration(text: str) -> timedelta:
    """A duration written as ``DURATION_PATTERN`` says ("1h30m"); ValueError otherwise."""
    import re

    match = re.fullmatch(DURATION_PATTERN, text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: hours, minutes and seconds such as 5h, 90m, 1h30m, 45s"
        )
    h, m, s = (int(part[:-1]) if part else 0 for part in match.groups())
    return timedelta(hours=h, minutes=m, seconds=s)


class Recurrence(_Model):
    """A new run each time the window opens (a clean rerun under a new runId)."""

    concurrency_policy: Literal["Continue", "Replace", "Skip"] = Field(
        default="Continue",
        description="When the window opens and the last run has not finished: Continue goes "
        "on with it (the new run starts once it has ended); Replace ends it and starts the "
        "new run from item 1; Skip ends it and leaves this window unused (the next window "
        "starts a new run).",
    )
    history_limit: int = Field(
        default=3,
        ge=0,
        le=MAX_HISTORY,
        description="How many ended runs' summaries status.history keeps, newest first.",
    )


class Window(_Model):
    """When the batch may run: from each time the schedule fires, for a duration."""

    schedule: str = Field(
        min_length=1,
        max_length=100,
        description="When the window opens, in CronJob's syntax: five fields (minute hour "
        "day-of-month month day-of-week) or a macro such as @daily.",
    )
    duration: str = Field(
        max_length=20,
        description="How long each window stays open, e.g. 5h, 90m, 1h30m (at most 168h). "
        "Wall-clock time in timeZone: 01:00 for 5h ends at 06:00 also on a night the clocks "
        "change.",
    )
    time_zone: str = Field(
        default="UTC",
        max_length=64,
        description="The IANA time zone the schedule is read in, e.g. Europe/Berlin.",
    )
    stop_before: str | None = Field(
        default=None,
        max_length=20,
        description="Stop the worker this long before the window ends (e.g. 10m), so that "
        "its last checkpoint write lands inside the window. Less than duration.",
    )
    recurrence: Recurrence | None = Field(
        default=None,
        description="Start a new run (a new status.runId) each time the window opens.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from resumable.cron import CronSchedule

        CronSchedule.parse(value)  # ValueError names the field of the expression
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a known IANA time zone (such as UTC or Europe/Berlin)"
            ) from None
        return value

    @field_validator("duration")
    @classmethod
    def _length(cls, value: str) -> str:
        length = parse_duration(value)
        if not timedelta(0) < length <= timedelta(seconds=MAX_WINDOW_SECONDS):
            raise ValueError(f"{value!r}: a window lasts more than 0s and at most 168h")
        return value

    @field_validator("stop_before")
    @classmethod
    def _margin(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _margin_inside(self) -> Window:
        if self.stop_before is not None and self.margin >= self.length:
            raise ValueError(
                f"window.stopBefore ({self.stop_before}) must be shorter than "
                f"window.duration ({self.duration})"
            )
        return self

    @property
    def length(self) -> timedelta:
        """``duration`` as a timedelta."""
        return parse_duration(self.duration)

    @property
    def margin(self) -> timedelta:
        """``stopBefore`` as a timedelta (0 when not set)."""
        return parse_duration(self.stop_before) if self.stop_before else timedelta(0)

    @property
    def zone(self) -> ZoneInfo:
        """``timeZone`` as a ZoneInfo."""
        return ZoneInfo(self.time_zone)


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
        "a letter or digit. With window.recurrence, the prefix of each run's id.",
    )
    window: Window | None = Field(
        default=None,
        description="Run only inside this time window: outside it the worker is stopped "
        "gracefully (phase Waiting) and the batch resumes at its checkpoint when it opens.",
    )

    @model_validator(mode="after")
    def _recurring_is_kept(self) -> ResumableBatchSpec:
        if (
            self.window is not None
            and self.window.recurrence is not None
            and self.ttl_seconds_after_finished is not None
        ):
            raise ValueError(
                "ttlSecondsAfterFinished cannot be set with window.recurrence: a recurring "
                "batch starts a new run at each window, so it is never done"
            )
        return self

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
    claims: int | None = Field(
        default=None,
        ge=0,
        description="Parallel workers: chunks claimed in this run. Every claim tests the "
        "checkpoint as it read it and bumps this, so two workers never take one chunk.",
    )

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


def worker_pod_name(batch: str, slot: int, attempt: int) -> str:
    """The deterministic name of a worker slot's attempt's pod."""
    return f"{batch}-w{slot}-{attempt}"


class WorkerSlot(_Model):
    """One parallel worker's slot: its attempt, the chunk it holds, its work not folded yet."""

    # The worker of the slot's current attempt writes done, tokens, costUsd and
    # inflight (tested against attempt, its fencing token) and folds done into
    # checkpoint.completed when it claims its next chunk; the operator writes the rest.

    slot: int = Field(ge=0, lt=MAX_PARALLELISM, description="The worker's slot number.")
    attempt: int = Field(
        default=0, ge=0, description="Fencing token: writes from older attempts are refused."
    )
    started: bool = Field(
        default=False,
        description="True once the slot's current attempt was started: its pod is "
        "<batch>-w<slot>-<attempt>, and it is False again when that pod ended.",
    )
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
    retry_after: str = Field(default="", description="Earliest time for its next attempt.")
    idle: bool = Field(
        default=False, description="True once the pool had no chunk left for it: it ended."
    )

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields at their default are left out (the CRD declares no defaults for them),
        so 64 slots fit a small status. ``slot``, ``attempt`` and ``done`` are always
        written: every worker write tests its slot's attempt, and the operator's write
        of a slot its done items too (a JSON patch cannot test a missing field)."""
        data: dict[str, Any] = handler(self)
        return {
            key: value
            for key, value in data.items()
            if key in _SLOT_ALWAYS or value != _SLOT_DEFAULTS.get(key, _MISSING)
        }

    def pod(self, batch: str) -> str:
        """The pod of the slot's current attempt ("" when it has none): the name is
        derived, not stored, so 64 slots of a batch with a long name stay small."""
        return worker_pod_name(batch, self.slot, self.attempt) if self.started else ""

    @field_validator("claim", "done")
    @classmethod
    def _ranges(cls, value: str) -> str:
        from resumable.ranges import IndexSet

        IndexSet.parse(value)
        return value


_MISSING = object()
#: WorkerSlot's defaults by field name and by alias: what its serializer leaves out.
_SLOT_DEFAULTS: dict[str, Any] = {
    key: info.default
    for name, info in WorkerSlot.model_fields.items()
    if not info.is_required() and info.default is not None
    for key in {name, info.alias or name}
}
_SLOT_ALWAYS = frozenset({"slot", "attempt", "done"})


class WindowStatus(_Model):
    """Where the batch stands against spec.window (both times RFC 3339, UTC)."""

    opens_at: str = Field(
        default="", description="While the batch waits: when its window opens next."
    )
    closes_at: str = Field(
        default="",
        description="While the window is open: when the worker is stopped (the window's end, "
        "less stopBefore).",
    )


class RunSummary(_Model):
    """One ended run of a recurring batch."""

    run_id: str = Field(description="The run's status.runId.")
    result: Literal["Succeeded", "Failed", "Replaced", "Skipped"] = Field(
        description="Succeeded or Failed; Replaced or Skipped when a new window came before "
        "it ended (spec.window.recurrence.concurrencyPolicy)."
    )
    progress: str = Field(default="", description='Items done when it ended, e.g. "47/200".')
    restarts: int = Field(default=0, ge=0, description="Its restarts after failures.")
    disruptions: int = Field(default=0, ge=0, description="Its restarts after disruptions.")
    skipped_items: int = Field(default=0, ge=0, description="Poison items it skipped.")
    ended_at: str = Field(default="", description="When it ended or was ended (RFC 3339).")


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
    window: WindowStatus | None = Field(
        default=None, description="With spec.window: when it opens next, or closes."
    )
    history: list[RunSummary] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="With spec.window.recurrence: the last ended runs, newest first.",
    )


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
