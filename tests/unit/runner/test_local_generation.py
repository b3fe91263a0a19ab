"""The local runner's stand-in for metadata.generation: one more per spec change.

The API server bumps a batch's generation on every spec change and the decisions
rely on it; locally the state directory keeps the spec's digest (the core's
``spec_digest(spec, whole=True)``, the same function a failed batch's failedSpec
uses) and the generation it was given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from resumable.v1alpha1 import ResumableBatch
from resumable_core.policy.reopen import spec_digest
from resumable_runner.runner import GENERATION_FILE, LocalRunner


def batch(max_restarts: int = 3) -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "gen"},
            "spec": {
                "retry": {"maxRestarts": max_restarts},
                "template": {"spec": {"containers": [{"name": "w", "command": ["true"]}]}},
            },
        }
    )


def generation(state: Path, body: ResumableBatch) -> int:
    state.mkdir(parents=True, exist_ok=True)
    return LocalRunner(body, state)._generation()


def test_the_generation_moves_on_only_when_the_spec_changes(tmp_path: Path) -> None:
    assert generation(tmp_path, batch()) == 1
    assert generation(tmp_path, batch()) == 1
    assert generation(tmp_path, batch(max_restarts=5)) == 2
    recorded = json.loads((tmp_path / GENERATION_FILE).read_text())
    assert recorded == {"generation": 2, "spec": spec_digest(batch(5).spec, whole=True)}


def test_a_state_directory_of_0_2_with_the_long_digest_keeps_its_generation(
    tmp_path: Path,
) -> None:
    spec = batch().spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    long = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    (tmp_path / GENERATION_FILE).write_text(json.dumps({"generation": 4, "spec": long}))
    assert generation(tmp_path, batch()) == 4  # the same spec: no edit to reopen anything
    assert generation(tmp_path, batch(max_restarts=5)) == 5


def test_the_whole_spec_digest_differs_from_the_fixing_fields_one() -> None:
    # maxRestarts is not a fixing field (it reopens by its own rule) but is a spec change.
    assert spec_digest(batch(3).spec) == spec_digest(batch(5).spec)
    assert spec_digest(batch(3).spec, whole=True) != spec_digest(batch(5).spec, whole=True)
