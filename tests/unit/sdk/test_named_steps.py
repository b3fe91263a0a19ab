"""Named steps: a step a crashed attempt completed returns its saved result instead of rerunning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runkit import MakeRun, abandon


class Counter:
    """A step body that counts its calls and returns a fixed result."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.result


def test_a_run_level_step_runs_once_and_returns_its_result(make_run: MakeRun) -> None:
    research = Counter({"sources": ["a", "b"]})
    run = make_run()
    assert run.step("research", research) == {"sources": ["a", "b"]}
    assert run.step("research", research) == {"sources": ["a", "b"]}
    assert research.calls == 1


def test_a_step_completed_by_a_crashed_attempt_is_not_rerun(make_run: MakeRun) -> None:
    research, parse = Counter({"sources": 3}), Counter(["p1", "p2"])
    crashed = make_run()
    crashed.step("research", research)
    abandon(crashed)  # killed before the next step: no flush, no close

    resumed = make_run()
    assert resumed.attempt == 2
    assert resumed.step("research", research) == {"sources": 3}
    assert resumed.step("parse", parse) == ["p1", "p2"]
    assert (research.calls, parse.calls) == (1, 1)


def test_a_step_that_raised_is_run_again_next_time(make_run: MakeRun) -> None:
    def flaky() -> int:
        raise TimeoutError("search API timed out")

    run = make_run()
    with pytest.raises(TimeoutError):
        run.step("research", flaky)
    assert make_run().step("research", Counter(7)) == 7


def test_item_steps_are_kept_per_item(make_run: MakeRun) -> None:
    fetch = Counter("page")
    crashed = make_run()
    for item in crashed.items(range(3)):
        with item:
            item.step("fetch", fetch)
        if item.index == 1:
            abandon(crashed)  # items 0 and 1 fetched, neither saved as done
            break
    assert fetch.calls == 2

    resumed = make_run()
    for item in resumed.items(range(3)):
        with item:
            assert item.step("fetch", fetch) == "page"
    assert fetch.calls == 3  # only item 2 fetched anew


def test_steps_are_cleared_once_the_run_finishes(make_run: MakeRun, store_dir: Path) -> None:
    research = Counter("findings")
    run = make_run()
    run.step("research", research)
    for item in run.items(range(2)):
        with item:
            item.step("write", Counter("draft"))
    assert list((store_dir / "steps").glob("*.json")) == []
    make_run().step("research", research)  # a clean rerun does the research again
    assert research.calls == 2


def test_steps_of_different_run_ids_do_not_mix(make_run: MakeRun) -> None:
    first, second = Counter("v1"), Counter("v2")
    assert make_run(run_id="r1").step("research", first) == "v1"
    assert make_run(run_id="r2").step("research", second) == "v2"
    assert (first.calls, second.calls) == (1, 1)


def test_a_step_returns_its_stored_json_form_on_the_first_attempt_as_after_a_resume(
    make_run: MakeRun,
) -> None:
    # {1: "one"} is stored as {"1": "one"}: the first attempt must see what a resumed one
    # will, so `counts[1]` fails at once instead of only in recovery.
    first = make_run()
    got = first.step("count", lambda: {1: "one", 2: "two"})
    assert got == {"1": "one", "2": "two"}
    abandon(first)
    assert make_run().step("count", Counter(None)) == got


def test_a_step_name_with_a_slash_is_refused_naming_the_step(make_run: MakeRun) -> None:
    with pytest.raises(ValueError, match=r"step name 'a/b': must be non-empty, without '/'"):
        make_run().step("a/b", Counter(1))


def test_a_batch_started_over_beside_an_old_volume_never_gets_its_step_results(
    tmp_path: Path,
) -> None:
    # Steps live with the outputs (RESUMABLE_OUTPUT_DIR), which may outlive the
    # checkpoint: here the first batch's state is gone and a new one starts with
    # the same name and volume, as after `kubectl delete` and `apply` again.
    from resumable import CheckpointPolicy, DirectoryOutputs, LocalStore, Run, Settings

    volume = tmp_path / "volume"

    def start(state: Path, run_id: str = "") -> Run:
        settings = Settings(
            batch_name="b", directory=state, run_id=run_id, policy=CheckpointPolicy(),
            handle_signals=False,
        )  # fmt: skip
        return Run(
            settings,
            LocalStore(state),
            DirectoryOutputs(volume / "outputs"),
            DirectoryOutputs(volume / "steps"),
        )

    old = start(tmp_path / "state-1")
    assert old.step("research", Counter("about document a")) == "about document a"
    abandon(old)  # failed, then deleted: its steps stay on the volume

    resumed = start(tmp_path / "state-1")  # the same batch, resumed: reused
    assert resumed.step("research", Counter("not called")) == "about document a"
    abandon(resumed)

    new = Counter("about document w")
    assert start(tmp_path / "state-2").step("research", new) == "about document w"
    assert new.calls == 1
    # Nor do runId "" and a runId that happens to be "run" share results.
    named = Counter("run 'run'")
    assert start(tmp_path / "state-1", run_id="run").step("research", named) == "run 'run'"
    assert named.calls == 1


def test_a_step_whose_result_is_not_json_fails_on_the_first_attempt_naming_it(
    make_run: MakeRun,
) -> None:
    class Plan:
        def __init__(self) -> None:
            self.queries = ["a", "b"]

    with pytest.raises(TypeError, match=r"step 'run-plan': its result must be JSON .* not Plan"):
        make_run().step("plan", Plan)
