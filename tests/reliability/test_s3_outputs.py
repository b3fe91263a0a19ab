"""Outputs in an S3-compatible bucket (moto's server on loopback): exactly once, as listed.

The worker is tests/workers.py (or tests/parallel_worker.py under the real local
runner) with ``spec.outputs.s3`` as RESUMABLE_OUTPUTS, writing to a bucket on
moto's S3 server (the ``moto`` fixture, tests/s3server.py). What a listing shows
is read with :func:`resumable.outputs.read_outputs` (what ``resumable outputs``
prints), against the status the worker saved; what the bucket holds is read raw.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from workers import ROOT, expected_output, read_log, start_worker, worker_env

from resumable import LocalStore
from resumable._s3 import S3Outputs, batch_root, open_bucket
from resumable.outputs import read_outputs
from resumable.v1alpha1 import OutputsSpec, ResumableBatch, ResumableBatchStatus
from resumable_runner.runner import LocalRunner
from tests.reliability.faults import FaultProxy
from tests.s3server import MotoServer
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

EVERY_ITEM = json.dumps({"everyItems": 1, "minIntervalSeconds": 0})


def s3_env(moto: MotoServer, bucket: str, endpoint: str | None = None) -> dict[str, str]:
    """RESUMABLE_OUTPUTS naming the bucket, and moto's credentials."""
    outputs = {"s3": {"bucket": bucket, "endpoint": endpoint or moto.endpoint}}
    return {"RESUMABLE_OUTPUTS": json.dumps(outputs), **moto.env()}


def bucket_store(moto: MotoServer, bucket: str, state: Path, name: str = "trial") -> S3Outputs:
    """The outputs of the local batch in ``state`` as raw objects (every key, covered or not)."""
    spec = OutputsSpec.model_validate({"s3": {"bucket": bucket, "endpoint": moto.endpoint}}).s3
    assert spec is not None
    uid = (state / ".incarnation").read_text().strip()
    root = batch_root(spec, namespace="default", name=name, uid=uid, run_id="")
    return S3Outputs(open_bucket(spec, moto.env()), lambda: root, "outputs")


def saved_status(state: Path) -> ResumableBatchStatus:
    status = LocalStore(state).load()
    assert status is not None
    return status


def test_sigkill_between_object_and_position_write_hides_the_redo_and_lists_each_item_once(
    tmp_path: Path, moto: MotoServer, bucket: str
) -> None:
    state, log = tmp_path / "state", tmp_path / "log"
    env = worker_env(
        state,
        log,
        RESUMABLE_CHECKPOINT=EVERY_ITEM,
        WORKER_ITEMS="8",
        WORKER_DELAY="0",
        WORKER_WINDOW="0.5",
        **s3_env(moto, bucket),
    )
    proc = start_worker(env)
    # The fourth write pauses after item 3's object is stored, before its position.
    wait_for(
        lambda: sum(line[0] == "window" for line in read_log(log)) >= 4,
        what="the fourth checkpoint write's window",
        every=0.002,
        timeout=30,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    store = bucket_store(moto, bucket, state)
    status = saved_status(state)
    assert status.checkpoint.completed == "0-2"
    assert store.keys() == [f"{i:08d}" for i in range(4)]  # item 3's object is there...
    listed = [index for index, _ in read_outputs(store, status)]
    assert listed == [0, 1, 2]  # ...and not listed: no position covers it

    env.pop("WORKER_WINDOW")
    again = start_worker(env)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out
    starts = [int(line[1]) for line in read_log(log) if line[0] == "start"]
    assert starts.count(3) == 2  # redone, its object overwritten
    final = list(read_outputs(store, saved_status(state)))
    assert [index for index, _ in final] == list(range(8))  # each once, in item order
    assert [value["output"] for _, value in final] == [expected_output(i) for i in range(8)]


def test_a_bucket_outage_mid_run_makes_the_worker_wait_and_loses_nothing(
    tmp_path: Path, moto: MotoServer, bucket: str
) -> None:
    proxy = FaultProxy(moto.port)
    try:
        state, log = tmp_path / "state", tmp_path / "log"
        env = worker_env(
            state,
            log,
            RESUMABLE_CHECKPOINT=json.dumps({"everySeconds": 0.2, "minIntervalSeconds": 0.1}),
            WORKER_ITEMS="60",
            WORKER_DELAY="0.03",
            **s3_env(moto, bucket, endpoint=f"http://127.0.0.1:{proxy.port}"),
        )
        proc = start_worker(env)
        wait_for(
            lambda: sum(line[0] == "commit" for line in read_log(log)) >= 10,
            what="ten items committed",
            timeout=30,
        )
        proxy.set("refuse")  # the server is down: every connection reset
        wait_for(
            lambda: sum(mode == "refuse" for _, mode in proxy.accepted) >= 3,
            what="the worker trying the bucket while it is down",
            timeout=30,
        )
        during = saved_status(state).checkpoint.completed
        proxy.set("pass")
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out
    finally:
        proxy.close()
    starts = [int(line[1]) for line in read_log(log) if line[0] == "start"]
    assert sorted(starts) == list(range(60))  # one worker, no death: nothing redone
    status = saved_status(state)
    assert status.checkpoint.finished
    listed = list(read_outputs(bucket_store(moto, bucket, state), status))
    assert [index for index, _ in listed] == list(range(60)), during
    assert all(value["output"] == expected_output(i) for i, value in listed)


def parallel_batch(tmp_path: Path, bucket: str, endpoint: str, *, items: int) -> ResumableBatch:
    script = ROOT / "tests" / "parallel_worker.py"
    variables = {
        "WORKER_ITEMS": str(items),
        "WORKER_DELAY": "0.01",
        "WORKER_LOG": str(tmp_path / "executions.log"),
        "PYTHONPATH": str(ROOT / "sdk"),
    }
    body: dict[str, Any] = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "par-s3"},
        "spec": {
            "parallelism": 4,
            "chunkSize": 5,
            "outputs": {"s3": {"bucket": bucket, "endpoint": endpoint, "prefix": "runs"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "command": [sys.executable, str(script)],
                            "env": [{"name": k, "value": v} for k, v in variables.items()],
                        }
                    ]
                }
            },
        },
    }
    return ResumableBatch.model_validate(body)


def resumable_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `resumable` command, as a user runs it."""
    command = Path(sys.executable).with_name("resumable")
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_four_parallel_workers_write_disjoint_items_and_the_cli_lists_each_once(
    tmp_path: Path, moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in moto.env().items():
        monkeypatch.setenv(var, value)  # the runner's workers get its environment
    state = tmp_path / "state"
    batch = parallel_batch(tmp_path, bucket, moto.endpoint, items=80)
    result = LocalRunner(batch, state).run()
    assert result.phase == "Succeeded", [e.message for e in result.events]

    cli = resumable_cli("outputs", "par-s3", "--state-dir", str(state))
    assert cli.returncode == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(80))  # each once, in item order
    slots = {line["output"]["slot"] for line in lines}
    # Several workers wrote to the bucket (how many took chunks depends on the machine's load).
    assert len(slots) > 1, slots

    target = tmp_path / "download"
    cli = resumable_cli("outputs", "par-s3", "--state-dir", str(state), "--to", str(target))
    assert cli.returncode == 0, cli.stderr
    assert sorted(p.name for p in target.iterdir()) == [f"{i:08d}.json" for i in range(80)]


def test_conditional_writes_overwrite_a_redone_item_but_keep_the_first_step_result(
    moto: MotoServer, bucket: str
) -> None:
    spec = OutputsSpec.model_validate({"s3": {"bucket": bucket, "endpoint": moto.endpoint}}).s3
    assert spec is not None
    client = open_bucket(spec, moto.env())

    def store(kind: str, *, first_wins: bool = False) -> S3Outputs:
        return S3Outputs(client, lambda: "ns/b/uid/-", kind, first_wins=first_wins)

    first, redo = store("outputs"), store("outputs")
    first.put("00000000", {"output": "first"})
    first.sync()
    redo.put("00000000", {"output": "redo"})
    redo.sync()
    assert (first.overwritten, redo.overwritten) == (0, 1)  # If-None-Match saw the object
    assert store("outputs").get("00000000") == {"output": "redo"}

    one, other = store("steps", first_wins=True), store("steps", first_wins=True)
    one.put("s~plan", {"result": 1})
    one.sync()
    other.put("s~plan", {"result": 2})
    other.sync()
    assert other.get("s~plan") == {"result": 1}  # the first writer's result stands
