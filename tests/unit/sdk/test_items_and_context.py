"""Items and runtime context: stable keys, error handling, and the context saved with each write.

Error handling includes what is not an item's error: a cancelled async worker, and
a store outage while the item's own exception is being saved.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from runkit import FakeClock, MakeRun, RecordingStore, read_status

from resumable import CheckpointPolicy, LocalStore, ResumableError, Run
from resumable.errors import StoreUnavailableError
from resumable.v1alpha1 import Checkpoint

EVERY_ITEM = CheckpointPolicy(every_items=1, min_interval_seconds=0)


def keys_of(run: Run, count: int) -> dict[int, str]:
    keys = {}
    for item in run.items(range(count)):
        with item:
            keys[item.index] = item.key
    return keys


# ------------------------------------------------------------------------ item.key


def test_item_key_is_batch_identity_plus_index(make_run: MakeRun) -> None:
    assert keys_of(make_run(batch_name="docs"), 3) == {
        0: "local/docs/0",
        1: "local/docs/1",
        2: "local/docs/2",
    }


def test_item_key_is_the_same_in_every_attempt(make_run: MakeRun) -> None:
    first = make_run(batch_name="docs")
    seen_by_first = {}
    for item in first.items(range(5)):
        seen_by_first[item.index] = item.key
        if item.index == 3:
            break  # item 3 is in flight when the attempt stops; 0-2 are saved
    second = make_run(batch_name="docs")
    assert second.attempt == 2
    seen_by_second = keys_of(second, 5)
    assert seen_by_second == {3: "local/docs/3", 4: "local/docs/4"}
    assert seen_by_first[3] == seen_by_second[3]


def test_item_key_names_namespace_and_run_id_and_differs_between_batches(
    make_run: MakeRun, tmp_path: Path
) -> None:
    one = keys_of(make_run(tmp_path / "a", batch_name="docs", namespace="team", run_id="r7"), 1)
    two = keys_of(make_run(tmp_path / "b", batch_name="other", namespace="team"), 1)
    assert (one[0], two[0]) == ("team/docs/r7/0", "team/other/0")


def test_each_output_file_records_its_index_and_key(make_run: MakeRun, store_dir: Path) -> None:
    run = make_run(batch_name="docs")
    for item in run.items(["a", "b"]):
        with item:
            item.output = {"upper": item.value.upper()}
    stored = [json.loads(p.read_text()) for p in sorted((store_dir / "outputs").glob("*.json"))]
    assert stored == [
        {"index": 0, "key": "local/docs/0", "output": {"upper": "A"}},
        {"index": 1, "key": "local/docs/1", "output": {"upper": "B"}},
    ]


def test_item_number_is_one_based(make_run: MakeRun) -> None:
    assert [item.number for item in make_run().items("abc")] == [1, 2, 3]


def test_usage_must_not_be_negative(make_run: MakeRun) -> None:
    item = next(iter(make_run().items(range(1))))
    with pytest.raises(ValueError, match="must be finite and not negative"):
        item.add_usage(tokens=-1)


@pytest.mark.parametrize(
    ("usage", "error"),
    [
        ({"tokens": 5228.75}, TypeError),  # tokens=len(text) / 4
        ({"tokens": True}, TypeError),
        ({"cost_usd": float("nan")}, ValueError),
        ({"cost_usd": float("inf")}, ValueError),
        ({"cost_usd": "0.01"}, TypeError),
    ],
    ids=["fractional-tokens", "bool-tokens", "nan-cost", "infinite-cost", "text-cost"],
)
def test_usage_a_checkpoint_could_not_hold_is_refused_where_it_is_added(
    make_run: MakeRun, usage: dict[str, Any], error: type[Exception]
) -> None:
    # Accepted, it was saved and then every later attempt found the checkpoint corrupt.
    run = make_run()
    for item in run.items(range(2)):
        with item:
            if item.index == 1:
                with pytest.raises(error, match=r"add_usage|usage must be finite"):
                    item.add_usage(**usage)
            item.add_usage(tokens=10, cost_usd=0.5)
    assert run.summary().tokens == 20
    make_run()  # the saved checkpoint reads back (a corrupt one raises here)


# ---------------------------------------------------------------- errors="continue"


def test_errors_continue_records_failures_goes_on_and_leaves_them_for_the_next_attempt(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    done = []
    for item in run.items(range(8), errors="continue"):
        with item:
            if item.index in (2, 5):
                raise ValueError(f"bad document {item.index}")
            item.output = item.index
            done.append(item.index)
    assert done == [0, 1, 3, 4, 6, 7]
    summary = run.summary()
    assert (summary.done, summary.failed, summary.finished) == (6, 2, False)
    checkpoint = read_status(store_dir)["checkpoint"]
    assert (checkpoint["completed"], checkpoint["nextIndex"]) == ("0-1,3-4,6-7", 2)
    assert (checkpoint["lastError"], checkpoint["lastErrorIndex"]) == (
        "ValueError: bad document 5",
        5,
    )
    assert sorted(p.stem for p in (store_dir / "outputs").glob("*.json")) == [
        f"{i:08d}" for i in done
    ]

    retry = make_run()
    assert [item.index for item in retry.items(range(8), errors="continue")] == [2, 5]
    assert read_status(store_dir)["checkpoint"]["finished"] is True


def test_errors_raise_saves_the_error_and_reraises(make_run: MakeRun, store_dir: Path) -> None:
    run = make_run()

    def work() -> None:
        for item in run.items(range(8)):
            with item:
                if item.index == 3:
                    raise KeyError("missing field")

    with pytest.raises(KeyError):
        work()
    checkpoint = read_status(store_dir)["checkpoint"]
    assert checkpoint["lastError"] == "KeyError: 'missing field'"
    assert (checkpoint["lastErrorIndex"], checkpoint["nextIndex"]) == (3, 3)


# ------------------------------------------------------------------------- context


def test_every_checkpoint_carries_task_worker_attempt_iteration_and_user_context(
    make_run: MakeRun,
) -> None:
    run = make_run(batch_name="docs", worker_id="worker-a", policy=EVERY_ITEM)
    for item in run.items(range(3)):
        with item:
            run.context["last"] = item.value
            run.context.setdefault("seen", []).append(item.index)
    store = run._store
    assert isinstance(store, RecordingStore)
    contexts = [w.context for w in store.writes]
    assert len(contexts) == 4  # three items and the final write
    for iteration, context in enumerate(contexts[:3], start=1):
        assert context["taskId"] == "local/docs"
        assert (context["workerId"], context["attempt"]) == ("worker-a", 1)
        assert context["iteration"] == iteration
        assert context["user"]["last"] == iteration - 1
    assert contexts[-1]["user"] == {"last": 2, "seen": [0, 1, 2]}


def test_the_user_context_and_iteration_come_back_on_resume(make_run: MakeRun) -> None:
    run = make_run(policy=EVERY_ITEM)
    for item in run.items(range(10)):
        with item:
            run.context["total"] = run.context.get("total", 0) + item.index
        if item.index == 3:
            break
    again = make_run(worker_id="worker-b", policy=EVERY_ITEM)
    assert again.context == {"total": 6}
    for item in again.items(range(10)):
        with item:
            pass
        break
    store = again._store
    assert isinstance(store, RecordingStore)
    context = store.writes[-1].context
    assert (context["iteration"], context["attempt"], context["workerId"]) == (5, 2, "worker-b")


def test_an_oversize_context_is_refused_and_the_last_good_checkpoint_stays(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run(policy=EVERY_ITEM)
    items = run.items(range(10))
    with next(items):
        pass
    good = read_status(store_dir)
    run.context["everything"] = "x" * 5000
    with pytest.raises(ResumableError, match=r"run\.context is \d+ bytes serialised, over the"):
        run.checkpoint()
    assert read_status(store_dir) == good
    run.context.clear()
    run.checkpoint()
    assert read_status(store_dir)["checkpoint"]["completed"] == "0"


@pytest.mark.parametrize(
    ("total_items", "given", "said"),
    [
        (
            200,
            150,
            "resumable: 200 items expected (spec.totalItems, RESUMABLE_TOTAL_ITEMS) but "
            "items() was given 150; the batch ends after these 150\n",
        ),
        (3, 3, ""),
    ],
    ids=["another-length-named-once", "matching-says-nothing"],
)
def test_a_list_of_another_length_than_total_items_is_named_on_stderr(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], total_items: int, given: int, said: str
) -> None:
    run = make_run(total_items=total_items)
    for item in run.items(range(given)):
        with item:
            pass
    assert capsys.readouterr().err == said
    assert run.summary().finished


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
