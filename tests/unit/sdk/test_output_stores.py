"""spec.outputs: the kinds, what a worker gets, tiny outputs in status, and what a listing shows.

The S3 store itself is tested against a real S3-compatible server in
tests/reliability/test_s3_outputs.py; here, what needs no server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import resumable
from resumable import ConfigError, DirectoryOutputs, Settings
from resumable._inline import OutputBudgetError
from resumable.outputs import open_outputs, read_outputs
from resumable.v1alpha1 import (
    MAX_INLINE_OUTPUT_BYTES,
    OutputsSpec,
    ResumableBatch,
    ResumableBatchSpec,
    ResumableBatchStatus,
)
from resumable_core import objects
from resumable_core.decision import PodPlan

SDK = Path(__file__).resolve().parents[3] / "sdk"
TEMPLATE = {"spec": {"containers": [{"name": "w", "command": ["true"]}]}}


def test_import_resumable_does_not_load_the_s3_client() -> None:
    code = "import sys, resumable; print(sorted(m for m in sys.modules if 'obstore' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SDK)},
    )
    assert out.stdout.strip() == "[]"


def test_outputs_take_at_most_one_kind() -> None:
    with pytest.raises(ValidationError, match="at most one of directory, s3 and status"):
        OutputsSpec.model_validate({"directory": {"path": "/data"}, "s3": {"bucket": "abc"}})


def test_outputs_in_status_refuse_parallel_workers_naming_the_remedy() -> None:
    with pytest.raises(ValidationError, match=r"outputs.status .* needs parallelism 1"):
        ResumableBatchSpec.model_validate(
            {"template": TEMPLATE, "parallelism": 2, "outputs": {"status": {}}}
        )


def test_inline_budget_cannot_approach_etcds_limit() -> None:
    with pytest.raises(ValidationError, match="less than or equal to"):
        OutputsSpec.model_validate({"status": {"maxBytes": MAX_INLINE_OUTPUT_BYTES + 1}})


def batch(outputs: dict[str, object]) -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "u-1"},
            "spec": {"template": TEMPLATE, "outputs": outputs},
        }
    )


def env_of(rb: ResumableBatch) -> dict[str, object]:
    plan = PodPlan(name="b-1", attempt=1, start_index=0, total_items=None)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in objects.injected_env(rb, plan)}


def test_a_bucket_reaches_the_worker_as_json_and_its_secret_as_secret_key_refs() -> None:
    env = env_of(
        batch(
            {
                "s3": {
                    "bucket": "results",
                    "endpoint": "http://s3.local:9000",
                    "credentialsSecret": {"name": "s3-creds", "sessionTokenKey": "token"},
                }
            }
        )
    )
    assert json.loads(str(env["RESUMABLE_OUTPUTS"]))["s3"]["bucket"] == "results"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert env["AWS_SESSION_TOKEN"] == {"secretKeyRef": {"name": "s3-creds", "key": "token"}}
    settings = Settings.from_env({"RESUMABLE_OUTPUTS": str(env["RESUMABLE_OUTPUTS"])})
    assert settings.outputs is not None
    assert settings.outputs.s3 is not None


def test_a_bucket_without_a_secret_leaves_credentials_to_the_pod() -> None:
    env = env_of(batch({"s3": {"bucket": "results"}}))
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "RESUMABLE_OUTPUTS" in env


def test_a_directory_reaches_the_worker_as_its_output_dir() -> None:
    env = env_of(batch({"directory": {"path": "/data/out"}}))
    assert env["RESUMABLE_OUTPUT_DIR"] == "/data/out"
    assert "RESUMABLE_OUTPUTS" not in env


def test_a_bad_outputs_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"RESUMABLE_OUTPUTS is not a valid spec\.outputs"):
        Settings.from_env({"RESUMABLE_OUTPUTS": '{"s3": {}}'})


def inline_run(tmp_path: Path, max_bytes: int) -> resumable.Run:
    settings = Settings(
        outputs=OutputsSpec.model_validate({"status": {"maxBytes": max_bytes}}),
        handle_signals=False,
    )
    return resumable.start("inline", directory=tmp_path / "state", settings=settings)


def test_tiny_outputs_go_into_status_with_the_position_that_covers_them(tmp_path: Path) -> None:
    run = inline_run(tmp_path, 4096)
    for item in run.items(["a", "b", "c"]):
        with item:
            item.output = item.value.upper()
    run.close()
    status = resumable.LocalStore(tmp_path / "state").load()
    assert status is not None
    assert status.checkpoint.finished
    assert sorted(status.checkpoint.outputs or {}) == ["00000000", "00000001", "00000002"]
    spec = OutputsSpec.model_validate({"status": {}})
    store = open_outputs(spec, status=status, namespace="local", name="inline", uid="")
    assert [v["output"] for _, v in read_outputs(store, status)] == ["A", "B", "C"]


def test_outputs_past_the_status_budget_are_refused_naming_budget_and_remedy(
    tmp_path: Path,
) -> None:
    run = inline_run(tmp_path, 200)
    with pytest.raises(OutputBudgetError) as caught:  # noqa: PT012
        for item in run.items(range(10)):
            with item:
                item.output = "x" * 60
    message = str(caught.value)
    assert "spec.outputs.status.maxBytes budget of 200" in message
    assert "spec.outputs.s3" in message
    run.close()
    status = resumable.LocalStore(tmp_path / "state").load()
    assert status is not None
    assert len(json.dumps(status.checkpoint.outputs)) <= 200


def test_a_listing_shows_only_the_items_the_status_covers_in_item_order(tmp_path: Path) -> None:
    store = DirectoryOutputs(tmp_path)
    for index in (4, 0, 2, 1):
        store.put(f"{index:08d}", {"index": index, "output": index * 10})
    store.sync()
    status = ResumableBatchStatus.model_validate({"checkpoint": {"completed": "0-2"}})
    # Item 4's object was stored, but no position covers it (its worker died first).
    assert [i for i, _ in read_outputs(store, status)] == [0, 1, 2]
    finished = ResumableBatchStatus.model_validate(
        {
            "checkpoint": {"finished": True, "itemsDone": 4, "totalItems": 5},
            "skipped": [{"index": 3, "attempts": 3, "error": "poison"}],
        }
    )
    assert [i for i, _ in read_outputs(store, finished)] == [0, 1, 2, 4]
