"""The local runner (`resumable run`) on the shared failure scenarios, with real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_runner.runner import LocalRunner
from scenarios import PARALLELISM, SCENARIOS, Scenario, manifest


@pytest.mark.parametrize("workers", PARALLELISM, ids=lambda n: f"{n}-workers")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_local_runner_meets_scenario(scenario: Scenario, workers: int, tmp_path: Path) -> None:
    batch = ResumableBatch.model_validate(manifest(scenario, "batch", parallelism=workers))
    state = tmp_path / "state"
    result = LocalRunner(batch, state).run()

    st = result.status
    assert result.phase == scenario.phase, [e.message for e in result.events]
    lowest, highest = scenario.restarts_with(workers)
    assert lowest <= st.restarts <= highest, [e.message for e in result.events]
    assert tuple(s.index + 1 for s in st.skipped) == scenario.skipped
    if scenario.reason:
        failed = next(c for c in st.conditions if c.type == "Failed")
        assert (failed.status, failed.reason) == ("True", scenario.reason)
    logs = "\n".join(p.read_text() for p in sorted((state / "logs").glob("*.log")))
    if scenario.log_line and workers == 1:
        assert scenario.log_line in logs
    if scenario.outputs is not None:
        outputs = sorted((state / "outputs").glob("*.json"))
        indices = [json.loads(p.read_text())["index"] for p in outputs]
        assert len(indices) == scenario.outputs == len(set(indices))
        skipped = {n - 1 for n in scenario.skipped}
        assert set(indices) == set(range(scenario.items)) - skipped
    if scenario.phase == "Succeeded":
        assert st.checkpoint.finished
        assert st.checkpoint.next_index == 0
        assert st.checkpoint.items_done == scenario.items - len(scenario.skipped)
