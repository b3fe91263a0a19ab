"""The bad-input catalogue: each malformed input refused with its field named, none crashes.

Three doors, each tried with real processes:

- **Manifests**, through ``kubectl apply --dry-run=server`` (the real API server,
  strict field validation, nothing stored) and through ``resumable run`` (the
  real entry point). The API server must refuse each (except the few marked as
  stored by a cluster, which cannot run), and ``resumable run`` must refuse each
  in one line naming the file and the field, with nothing started. The cases of
  tests/unit/runner/test_manifest_refusals.py are run here too, on both doors.
- **RESUMABLE_* values**, given to a real worker process (tests/workers.py): the
  cases of tests/unit/sdk/test_settings_env.py, end to end.
- **Corrupt checkpoints**: a local store's status.json, and a ResumableBatch's
  status on the real API server, read by a worker of the Kubernetes store.
- **Usage errors** only the running worker finds (a changed item list, a context
  over its budget): the batch fails at once naming the cause, never retried.

A worker refuses by raising the SDK's own error naming the variable, file or
field; any other exception is counted as a traceback (a crash). Anything that
exits 0, or starts running, is counted as silently accepted. The last test
records the figure: tried, refused with the field named, tracebacks, silently
accepted. Cases a known hole still lets through are ``xfail(strict=True)`` with
the hole named, so the day it is fixed the mark must go.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import JSON_PATCH, ApiError, KubeApi, batch_path
from tests.integration.harness import create_at_first_attempt
from tests.unit.runner.test_manifest_refusals import GOOD, REFUSED, edited
from tests.unit.runner.test_usage_exit import CHANGED_LIST, CONTEXT_OVER_BUDGET, run_batch
from tests.unit.sdk.test_settings_env import BAD as BAD_SETTINGS
from tests.workers import kube_worker_env, start_worker, worker_env

RESUMABLE = Path(sys.executable).parent / "resumable"


@dataclass(frozen=True)
class Verdict:
    """What one door did with one input."""

    refused: bool  # refused, naming what it must name
    traceback: bool  # crashed: a traceback that is not the SDK's own error
    accepted: bool  # exit 0, or it started running


#: Every verdict of this module, by (door, case), for the figure.
VERDICTS: dict[tuple[str, str], Verdict] = {}


def spec_line(line: str) -> bytes:
    """GOOD with one more line in its spec."""
    return edited("  totalItems: 3\n", f"  totalItems: 3\n  {line}\n")


def container_line(line: str) -> bytes:
    """GOOD with one more line in its container."""
    command = '          command: ["true"]\n'
    return edited(command, f"{command}          {line}\n")


def pod_line(line: str) -> bytes:
    """GOOD with one more line in its pod spec."""
    return edited("      containers:\n", f"      {line}\n      containers:\n")


HUGE = "x" * 200 * 1024  # over Linux's 128 KiB limit on one argument or variable
#: Cases of test_manifest_refusals.py `kubectl apply` takes: a comment padding the file
#: past what etcd stores (kubectl sends the object without it); two batches (each
#: applied, the second over the first), which `resumable run` cannot run both of; a key
#: given twice (kubectl keeps the last value, so the API server never sees the first).
STORED = ("too-big", "two-batches", "duplicate-key", "duplicate-key-flow")

# (id, file contents, what the runner's one line must contain, the cluster refuses it too)
MANIFESTS: list[Any] = [
    *[(case, contents, expected, case not in STORED) for case, contents, expected in REFUSED],
    ("empty-file", b"", "no ResumableBatch", True),
    ("a-list", b"- 1\n- 2\n", "no ResumableBatch", True),
    ("kind-misspelt", edited("kind: ResumableBatch", "kind: ResumableBatchh"), "ResumableBatch",
     True),
    ("api-version-unknown", edited("v1alpha1", "v9"), "apiVersion", True),
    ("no-name", edited("  name: docs\n", ""), "metadata.name", True),
    ("name-uppercase", edited("name: docs", "name: Docs"), "metadata.name", True),
    ("name-too-long", edited("name: docs", "name: " + "d" * 70), "metadata.name", True),
    ("no-spec", GOOD.split("spec:")[0].encode(), "spec", True),
    ("spec-a-string", GOOD.split("spec:")[0].encode() + b"spec: everything\n", "spec", True),
    ("no-template", edited("  template:\n    spec:\n      containers:\n        - name: worker\n"
                           '          command: ["true"]\n', ""), "spec.template", True),
    ("spec-field-misspelt", spec_line("totalItem: 3"), "spec.totalItem", True),
    ("totalItems-negative", edited("totalItems: 3", "totalItems: -1"), "spec.totalItems", True),
    ("totalItems-fraction", edited("totalItems: 3", "totalItems: 1.5"), "spec.totalItems", True),
    ("retry-field-misspelt", spec_line("retry: {maxRestart: 2}"), "spec.retry.maxRestart", True),
    ("maxRestarts-negative", spec_line("retry: {maxRestarts: -1}"), "spec.retry.maxRestarts",
     True),
    ("backoff-factor-below-1", spec_line("retry: {backoff: {factor: 0.5}}"),
     "spec.retry.backoff.factor", True),
    ("backoff-seconds-string", spec_line('retry: {backoff: {initialSeconds: "5s"}}'),
     "spec.retry.backoff.initialSeconds", True),
    ("onPoisonItem-lowercase", spec_line("retry: {onPoisonItem: skip}"),
     "spec.retry.onPoisonItem", True),
    ("neverRetryExitCodes-0", spec_line("retry: {neverRetryExitCodes: [0]}"),
     "spec.retry: neverRetryExitCodes: 0", True),
    ("neverRetryExitCodes-256", spec_line("retry: {neverRetryExitCodes: [256]}"),
     "spec.retry: neverRetryExitCodes: 256", True),
    ("checkpoint-field-misspelt", spec_line("checkpoint: {everyItem: 5}"),
     "spec.checkpoint.everyItem", True),
    ("everyItems-zero", spec_line("checkpoint: {everyItems: 0}"), "spec.checkpoint.everyItems",
     True),
    ("everySeconds-negative", spec_line("checkpoint: {everySeconds: -1}"),
     "spec.checkpoint.everySeconds", True),
    ("runId-with-a-space", spec_line('runId: "two words"'), "spec.runId", True),
    ("ttl-negative", spec_line("ttlSecondsAfterFinished: -5"), "spec.ttlSecondsAfterFinished",
     True),
    ("containers-empty", edited('containers:\n        - name: worker\n          command: ["true"]',
                                "containers: []"), "containers", True),
    ("containers-a-map", edited('containers:\n        - name: worker\n          command: ["true"]',
                                "containers: {name: worker}"), "containers", True),
    # The batch's template keeps unknown fields (the CRD does not hold the Pod schema), so
    # a cluster stores these batches and refuses their pods, created with fieldValidation
    # Strict; `resumable run` checks the template against the Pod schema up front.
    ("container-field-misspelt", container_line('comand: ["echo"]'), "unknown field comand",
     False),
    ("env-misspelt", container_line("evn: [{name: A, value: b}]"), "unknown field evn", False),
    ("restartPolicy-misspelt", pod_line("restartPolcy: Never"), "unknown field restartPolcy",
     False),
    ("resources-misspelt", container_line("resources: {limts: {cpu: 1}}"),
     "resources.limts: unknown field limts", False),
    ("env-value-a-number", container_line("env: [{name: A, value: 3}]"), "env[0].value", True),
    ("env-without-name", container_line("env: [{value: b}]"), "env[0].name", True),
    ("image-a-number", container_line("image: 3"), "image", True),
    # Over what Linux takes in one variable when it starts the worker.
    ("env-value-200KiB", container_line(f"env: [{{name: A, value: {HUGE}}}]"),
     "env[0].value: String should have at most 131072 characters", True),
]  # fmt: skip


def param_id(case: Any) -> str:
    values = case.values if hasattr(case, "values") else case
    return str(values[0])


def one_line_refusal(stderr: str, expected: str) -> bool:
    lines = stderr.splitlines()
    return len(lines) == 1 and lines[0].startswith("error: bad.yaml: ") and expected in lines[0]


@pytest.mark.parametrize(("case_id", "contents", "expected", "cluster_refuses"), MANIFESTS,
                         ids=[param_id(c) for c in MANIFESTS])  # fmt: skip
def test_malformed_manifest_is_refused_by_kubectl_apply_and_by_resumable_run(
    case_id: str,
    contents: bytes,
    expected: str,
    cluster_refuses: bool,
    kubectl: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(contents)
    applied = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))
    VERDICTS["kubectl apply", case_id] = Verdict(
        refused=applied.returncode != 0,
        traceback=False,
        accepted=applied.returncode == 0 and cluster_refuses,
    )
    result = subprocess.run(
        [str(RESUMABLE), "run", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    started = result.stdout != "" or (tmp_path / ".resumable").exists()
    VERDICTS["resumable run", case_id] = Verdict(
        refused=result.returncode == 1 and one_line_refusal(result.stderr, expected),
        traceback="Traceback" in result.stderr,
        accepted=result.returncode == 0 or started,
    )
    assert (applied.returncode != 0) == cluster_refuses, applied.stdout + applied.stderr
    assert one_line_refusal(result.stderr, expected), result.stderr[-2000:]
    assert (result.returncode, started) == (1, False)


def run_worker(env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    proc = start_worker(env)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def sdk_verdict(code: int, output: str, error: str, expected: str) -> Verdict:
    """A worker's end: refused (the SDK's ``error`` naming ``expected``), crashed or ran."""
    prefix = f"resumable.errors.{error}: "
    own = prefix in output and not output.split(prefix, 1)[0].endswith(" ")
    message = output.split(prefix, 1)[1] if own else ""
    return Verdict(
        refused=code != 0 and own and expected in message,
        traceback="Traceback" in output and not own,
        accepted=code == 0,
    )


SETTINGS: list[Any] = [
    *[(case_id, name, value, name) for case_id, (name, value, _) in BAD_SETTINGS.items()],
    ("careful-maybe", "RESUMABLE_CAREFUL", "maybe", "RESUMABLE_CAREFUL"),
    ("allow-changed-items-2", "RESUMABLE_ALLOW_CHANGED_ITEMS", "2",
     "RESUMABLE_ALLOW_CHANGED_ITEMS"),
    ("total-items-huge-text", "RESUMABLE_TOTAL_ITEMS", "9" * 5000, "RESUMABLE_TOTAL_ITEMS"),
    ("dir-cannot-be-made", "RESUMABLE_DIR", "/proc/resumable/state", "RESUMABLE_DIR"),
]  # fmt: skip


@pytest.mark.parametrize(("case_id", "name", "value", "expected"), SETTINGS,
                         ids=[param_id(c) for c in SETTINGS])  # fmt: skip
def test_malformed_resumable_variable_stops_the_worker_with_an_error_naming_it(
    case_id: str, name: str, value: str, expected: str, tmp_path: Path
) -> None:
    env = worker_env(tmp_path / "store", tmp_path / "exec.log", **{name: value})
    code, output = run_worker(env)
    verdict = sdk_verdict(code, output, "ConfigError", expected)
    VERDICTS["worker env", case_id] = verdict
    assert verdict == Verdict(refused=True, traceback=False, accepted=False), output[-2000:]


LOCAL_CHECKPOINTS = {
    "status-half-written": b'{"checkpoint": {"nextIndex": 4, "completed": "0-',
    "status-binary": bytes(range(256)),
    "position-a-string": b'{"checkpoint": {"nextIndex": "four"}}',
    "ranges-backwards": b'{"checkpoint": {"nextIndex": 0, "completed": "9-3"}}',
    "ranges-not-numbers": b'{"checkpoint": {"nextIndex": 0, "completed": "a-b"}}',
    "context-a-list": b'{"checkpoint": {"context": [1, 2]}}',
}


@pytest.mark.parametrize("case_id", LOCAL_CHECKPOINTS)
def test_corrupt_local_checkpoint_stops_the_worker_with_an_error_naming_the_file(
    case_id: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "status.json").write_bytes(LOCAL_CHECKPOINTS[case_id])
    code, output = run_worker(worker_env(store, tmp_path / "exec.log"))
    verdict = sdk_verdict(code, output, "CorruptCheckpointError", str(store / "status.json"))
    VERDICTS["local checkpoint", case_id] = verdict
    assert verdict == Verdict(refused=True, traceback=False, accepted=False), output[-2000:]


#: Corrupt values written to a batch's status.checkpoint on the API server, each a
#: JSON patch value; what the worker's refusal names.
KUBE_CHECKPOINTS = {
    "ranges-backwards": ({"completed": "9-3", "nextIndex": 0}, "checkpoint.completed"),
    "ranges-not-numbers": ({"completed": "a-b", "nextIndex": 0}, "checkpoint.completed"),
    "position-negative": ({"nextIndex": -4}, "checkpoint.nextIndex"),
    "attempt-a-string": ({"attempt": "one"}, "checkpoint.attempt"),
}


@pytest.mark.parametrize("case_id", KUBE_CHECKPOINTS)
def test_corrupt_checkpoint_on_the_api_server_is_refused_there_or_by_the_worker(
    case_id: str, api: KubeApi, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    values, expected = KUBE_CHECKPOINTS[case_id]
    create_at_first_attempt(api, namespace, "corrupt")
    ops = [{"op": "add", "path": f"/status/checkpoint/{k}", "value": v} for k, v in values.items()]
    refusal: ApiError | None = None
    try:
        api.request("PATCH", batch_path(namespace, "corrupt", status=True), body=ops,
                    content_type=JSON_PATCH)  # fmt: skip
    except ApiError as exc:
        refusal = exc
    if refusal is not None:
        # The CRD's schema keeps the corruption out: refused, naming the field.
        named = refusal.status == 422 and expected.split(".", 1)[1] in str(refusal)
        VERDICTS["batch status", case_id] = Verdict(refused=named, traceback=False, accepted=False)
        assert named, str(refusal)
        return
    env = kube_worker_env(tmp_path, kubeconfig, namespace, "corrupt")
    code, output = run_worker(env)
    verdict = sdk_verdict(code, output, "CorruptCheckpointError", expected)
    VERDICTS["batch status", case_id] = verdict
    assert verdict == Verdict(refused=True, traceback=False, accepted=False), output[-2000:]


#: Misuse only the running worker finds, the same on every attempt: (worker, its cause).
USAGE = {
    "item-list-changed": (CHANGED_LIST, "FingerprintMismatchError"),
    "context-over-budget": (CONTEXT_OVER_BUDGET, "run.context is"),
}


@pytest.mark.parametrize("case_id", USAGE)
def test_a_usage_error_fails_the_batch_at_once_naming_its_cause(
    case_id: str, tmp_path: Path
) -> None:
    # The runner's side of tests/unit/runner/test_usage_exit.py, counted here; the
    # operator's is tests/integration/test_usage_and_start_errors.py.
    worker, cause = USAGE[case_id]
    result, status = run_batch(tmp_path, worker)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    named = (failed["status"], failed["reason"]) == ("True", "UsageError")
    VERDICTS["usage error", case_id] = verdict = Verdict(
        refused=named and cause in failed["message"] and result.returncode == 1,
        traceback=False,  # the worker's own traceback of the SDK's error is its output
        accepted=result.returncode == 0,
    )
    assert verdict == Verdict(refused=True, traceback=False, accepted=False), failed


def test_bad_input_catalogue_figure(figure: Any) -> None:
    """Runs last in this module: the figure of every verdict above."""
    if not VERDICTS:
        pytest.skip("no catalogue case ran in this session (run the whole module)")
    doors = Counter(door for door, _ in VERDICTS)
    refused = sum(v.refused for v in VERDICTS.values())
    # Batches a cluster stores by design (their pods refused later, or kubectl's own
    # reading of the file): neither refused nor silently accepted.
    stored = sum(not (v.refused or v.accepted or v.traceback) for v in VERDICTS.values())
    tracebacks = [f"{d}: {c}" for (d, c), v in VERDICTS.items() if v.traceback]
    accepted = [f"{d}: {c}" for (d, c), v in VERDICTS.items() if v.accepted]
    known = [p.id or param_id(p) for p in (*MANIFESTS, *SETTINGS) if hasattr(p, "marks")]
    manifests = len({c for d, c in VERDICTS if d == "resumable run"})
    figure(
        "bad-input",
        f"{len(VERDICTS)} tried ({manifests} manifests through kubectl apply and resumable run, "
        f"{doors['worker env']} RESUMABLE_* values, "
        f"{doors['local checkpoint'] + doors['batch status']} corrupt checkpoints, "
        f"{doors['usage error']} usage errors); refused "
        f"with the field named {refused}; stored by kubectl apply as a cluster does {stored}; "
        f"tracebacks {len(tracebacks)}; silently accepted {len(accepted)}; known holes "
        f"marked xfail {len(known)}",
        tried=len(VERDICTS),
        manifests=manifests,
        refused=refused,
        stored=stored,
        tracebacks=tracebacks,
        silently_accepted=accepted,
        known_holes=known,
    )
    holes = {c for c in known}
    assert [t for t in tracebacks if t.split(": ", 1)[1] not in holes] == []
    assert [a for a in accepted if a.split(": ", 1)[1] not in holes] == []
    assert manifests >= 40
