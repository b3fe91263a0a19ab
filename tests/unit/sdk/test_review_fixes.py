"""Edge cases a review found: errors that keep going, cancellation, unusable state, forks, env.

Each test is a behaviour a worker relies on: an async worker can still be
cancelled, `errors="continue"` does not write once per failed item, a store
outage does not hide the item's own exception, state the schema lets through but
a run cannot use is an error naming the file, a forked child never writes its
parent's progress, and `start(name)` under `resumable run` uses the runner's store.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from runkit import FakeClock, MakeRun, RecordingStore, read_status

import resumable
from resumable import CheckpointPolicy, ConfigError, CorruptCheckpointError, LocalStore, Settings
from resumable._errors import StoreUnavailableError
from resumable.v1alpha1 import Checkpoint


def test_cancelling_an_async_worker_stops_the_loop_and_blames_no_item(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    seen: list[int] = []

    async def worker() -> None:
        for item in run.items(range(20), errors="continue"):
            with item:
                seen.append(item.index)
                await asyncio.sleep(0.05)

    async def main() -> None:
        async with asyncio.timeout(0.3):
            await worker()

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert len(seen) < 20  # the cancellation was not swallowed as an item error
    run.close()
    assert read_status(store_dir)["checkpoint"].get("lastError", "") == ""


def test_errors_continue_saves_failed_items_with_the_policy_not_one_write_each(
    store_dir: Path, make_run: MakeRun
) -> None:
    store = RecordingStore(store_dir)
    clock = FakeClock()
    run = make_run(store=store, clock=clock, policy=CheckpointPolicy(every_items=50))
    for item in run.items(range(200), errors="continue"):
        with item:
            if item.index % 2:
                raise RuntimeError(f"upstream refused item {item.number}")
    # 200 items, 100 of them failed: a write per 50 items, and the final one.
    assert len(store.writes) <= 6, len(store.writes)
    last = store.writes[-1]
    assert last.last_error == "RuntimeError: upstream refused item 200"
    assert last.last_error_index == 199


class UnreachableStore(LocalStore):
    """A LocalStore whose checkpoint writes fail as an unreachable API server's do."""

    def save_checkpoint(self, checkpoint: Checkpoint, **kwargs: Any) -> None:
        raise StoreUnavailableError(f"{self.describe()}: 503: unavailable")


def test_a_store_outage_does_not_replace_the_failing_items_own_exception(
    store_dir: Path, make_run: MakeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(store=UnreachableStore(store_dir))

    def work() -> None:
        for item in run.items(range(3)):
            with item:
                raise KeyError("missing-field")

    with pytest.raises(KeyError, match="missing-field"):
        work()
    assert "could not save the error of item 1: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("checkpoint", "says"),
    [
        ({"completed": "0-4x", "nextIndex": 5}, "bad index range '0-4x'"),
        ({"completed": "4-0", "nextIndex": 5}, "bad index range '4-0'"),
        ({"context": {"iteration": "many"}}, "context.iteration must be an integer"),
        ({"context": {"user": ["not", "a", "dict"]}}, "context.user must be an object"),
    ],
    ids=["completed-not-ranges", "completed-reversed", "iteration-not-a-number", "user-a-list"],
)
def test_state_the_schema_allows_but_a_run_cannot_use_is_an_error_naming_the_file(
    store_dir: Path, make_run: MakeRun, checkpoint: dict[str, Any], says: str
) -> None:
    store_dir.mkdir()
    status = {"checkpoint": {"attempt": 1, **checkpoint}}
    (store_dir / "status.json").write_text(json.dumps(status))
    with pytest.raises(CorruptCheckpointError) as caught:
        make_run()
    assert str(caught.value).startswith(f"{store_dir / 'status.json'}: not a valid checkpoint")
    assert says in str(caught.value)
    assert json.loads((store_dir / "status.json").read_text()) == status  # left as it was


def test_a_step_whose_result_is_not_json_fails_on_the_first_attempt_naming_it(
    make_run: MakeRun,
) -> None:
    class Plan:
        def __init__(self) -> None:
            self.queries = ["a", "b"]

    with pytest.raises(TypeError, match=r"step 'run-plan': its result must be JSON .* not Plan"):
        make_run().step("plan", Plan)


def test_a_forked_child_that_exits_normally_does_not_write_its_parents_progress(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        import resumable
        run = resumable.start("forky", directory=sys.argv[1])
        for item in run.items(range(6)):
            with item:
                if item.index == 3:
                    pid = os.fork()
                    if pid == 0:
                        sys.exit(0)  # unwinds the generator and runs atexit in the child
                    os.waitpid(pid, 0)
        print(run.summary().done)
        """
    )
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", script, str(store)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr  # the parent was not fenced by its child
    assert done.stdout.strip() == "6"
    assert read_status(store)["checkpoint"]["finished"] is True


def test_start_with_a_name_uses_the_runners_store_under_resumable_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESUMABLE_DIR", str(tmp_path / "runner-state"))
    run = resumable.start("summarizer")
    try:
        assert run._store.describe() == str(tmp_path / "runner-state" / "status.json")
    finally:
        run.close()


@pytest.mark.parametrize("value", ["2", "y", "maybe"])
def test_a_boolean_setting_that_is_neither_yes_nor_no_is_an_error_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"RESUMABLE_CAREFUL='{value}' is not a boolean"):
        Settings.from_env({"RESUMABLE_CAREFUL": value})
    assert Settings.from_env({"RESUMABLE_CAREFUL": "0"}).careful is False
    assert Settings.from_env({"RESUMABLE_CAREFUL": "true"}).careful is True


WITHOUT_KUBERNETES = "import sys; sys.modules['kubernetes'] = None; "


def test_the_kube_store_without_the_kubernetes_client_says_what_to_install(
    tmp_path: Path,
) -> None:
    code = WITHOUT_KUBERNETES + "import resumable; resumable.start()"
    env = {
        **os.environ,
        "RESUMABLE_STORE": "kube",
        "RESUMABLE_BATCH_NAME": "b",
        "RESUMABLE_NAMESPACE": "ns",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "resumable._errors.ConfigError: RESUMABLE_STORE=kube needs the Kubernetes client: "
        "pip install 'resumable-batch[kube]'"
    )


def test_a_run_started_outside_the_main_thread_warns_that_signals_will_not_save(
    tmp_path: Path,
) -> None:
    import threading

    caught: list[Warning] = []

    def start_in_thread() -> None:
        import warnings

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            run = resumable.start(settings=Settings(batch_name="t", directory=tmp_path / "s"))
            run.close()
        caught.extend(w.message for w in seen)  # type: ignore[misc]

    thread = threading.Thread(target=start_in_thread)
    thread.start()
    thread.join()
    assert any("outside the main thread" in str(w) for w in caught), caught


def test_a_loop_left_by_break_that_cannot_save_says_so_in_one_line(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from resumable import CheckpointPolicy, LocalStore, Run, Settings
        from resumable._errors import StoreUnavailableError

        class Down(LocalStore):
            def save_checkpoint(self, checkpoint, **kwargs):
                raise StoreUnavailableError("resumablebatch ns/b: 503: unavailable")

        store = Down(sys.argv[1])
        settings = Settings(
            batch_name="b", directory=store.root, handle_signals=False,
            policy=CheckpointPolicy(every_seconds=3600),
        )
        run = Run(settings, store, store.outputs, store.steps)
        for item in run.items(range(5)):
            with item:
                pass
            if item.index == 2:
                break  # leaves pending progress for the exit hooks
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == (
        "resumable: progress not saved as the loop ended: StoreUnavailableError: "
        "resumablebatch ns/b: 503: unavailable\n"
    )


def test_sigterm_in_a_write_inside_the_loop_exits_143_even_if_the_last_save_fails(
    tmp_path: Path,
) -> None:
    # An item used without `with item:` is committed inside items(); a SIGTERM that
    # cuts that write short must leave with 143, not with the failed exit save.
    script = textwrap.dedent(
        """
        import signal, sys
        from resumable import CheckpointPolicy, LocalStore, Run, Settings
        from resumable._errors import StoreUnavailableError
        from resumable._run import Terminated

        class Cut(LocalStore):
            calls = 0
            def save_checkpoint(self, checkpoint, **kwargs):
                Cut.calls += 1
                if Cut.calls == 1:
                    raise Terminated(signal.SIGTERM)  # the signal, mid-write
                raise StoreUnavailableError("resumablebatch ns/b: 503: unavailable")

        store = Cut(sys.argv[1])
        settings = Settings(
            batch_name="b", directory=store.root, handle_signals=False,
            policy=CheckpointPolicy(every_items=1, min_interval_seconds=0),
        )
        run = Run(settings, store, store.outputs, store.steps)
        for item in run.items(range(5)):
            pass  # committed when the loop moves on
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 143, done.stderr
    assert done.stderr == (
        "resumable: progress not saved as the loop ended: StoreUnavailableError: "
        "resumablebatch ns/b: 503: unavailable\n"
    )
