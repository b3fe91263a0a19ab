"""The checkpoint policy: writes coalesce as spec.checkpoint says; the last one always happens."""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest
from runkit import FakeClock, MakeRun, RecordingStore, read_status

from resumable import CheckpointPolicy, Run, Settings
from resumable._policy import Coalescer

NEVER = 86_400.0  # every_seconds that does not fire within a test


# ------------------------------------------------------------------ the pure rule


def test_every_items_fires_at_the_nth_pending_item_and_not_before() -> None:
    rule = Coalescer(CheckpointPolicy(every_items=3, every_seconds=NEVER, min_interval_seconds=0))
    rule.record()
    rule.record()
    assert not rule.due(now=0.0)
    rule.record()
    assert rule.due(now=0.0)


def test_every_seconds_fires_with_a_single_pending_item_once_the_time_passed() -> None:
    rule = Coalescer(CheckpointPolicy(every_seconds=2.0, min_interval_seconds=0), last_write=10.0)
    rule.record()
    assert not rule.due(now=11.9)
    assert rule.due(now=12.0)


def test_cost_trigger_fires_once_unsaved_cost_reaches_the_threshold() -> None:
    policy = CheckpointPolicy(cost_usd=2.0, every_seconds=NEVER, min_interval_seconds=0)
    rule = Coalescer(policy)
    rule.record(cost_usd=1.5)
    assert not rule.due(now=0.0)
    rule.record(cost_usd=0.5)
    assert rule.due(now=0.0)


def test_min_interval_holds_back_every_trigger() -> None:
    policy = CheckpointPolicy(every_items=1, cost_usd=0.01, min_interval_seconds=5.0)
    rule = Coalescer(policy, last_write=100.0)
    rule.record(cost_usd=10.0)
    assert not rule.due(now=104.9)
    assert rule.due(now=105.0)


def test_nothing_pending_is_never_due_however_long_it_waits() -> None:
    rule = Coalescer(CheckpointPolicy(every_items=1, min_interval_seconds=0))
    assert not rule.due(now=1e9)


def test_written_resets_pending_work_and_restarts_the_interval() -> None:
    rule = Coalescer(CheckpointPolicy(every_items=2, every_seconds=1.0, min_interval_seconds=0.5))
    rule.record(items=2, cost_usd=3.0)
    assert rule.due(now=1.0)
    rule.written(now=1.0)
    assert (rule.pending_items, rule.pending_cost, rule.last_write) == (0, 0.0, 1.0)
    rule.record()
    assert not rule.due(now=1.6)  # one item pending, one second not yet passed
    assert rule.due(now=2.0)


def test_default_policy_coalesces_to_about_one_write_per_second_in_a_local_run() -> None:
    policy = CheckpointPolicy()
    assert (policy.every_items, policy.cost_usd) == (None, None)
    assert (policy.every_seconds, policy.min_interval_seconds) == (None, 1.0)
    assert policy.resolved("local").every_seconds == 1.0


def test_default_every_seconds_in_a_cluster_is_ten_seconds() -> None:
    assert CheckpointPolicy().resolved("kube").every_seconds == 10.0


def test_every_seconds_set_in_the_spec_wins_over_the_store_default() -> None:
    policy = CheckpointPolicy(every_seconds=2.0)
    assert policy.resolved("kube").every_seconds == 2.0
    assert policy.resolved("local").every_seconds == 2.0


def test_an_unset_every_seconds_is_left_out_of_the_manifest() -> None:
    # The operator passes spec.checkpoint to the worker as it is written: unset stays
    # unset, so the worker's SDK picks the default for its store.
    assert CheckpointPolicy().model_dump(by_alias=True, exclude_none=True) == {
        "minIntervalSeconds": 1.0
    }


# ------------------------------------------------------------------ through a Run


def run_items(make_run: MakeRun, count: int, *, step: float, **kwargs: object) -> RecordingStore:
    """Process ``count`` items, the fake clock moving ``step`` seconds per item."""
    clock = FakeClock()
    run = make_run(clock=clock, **kwargs)
    store = run._store
    assert isinstance(store, RecordingStore)
    for item in run.items(range(count)):
        with item:
            clock.advance(step)
            item.output = item.index
    return store


def test_a_thousand_fast_items_under_the_default_policy_make_only_a_handful_of_writes(
    make_run: MakeRun,
) -> None:
    store = run_items(make_run, 1000, step=0.002)  # 2 s of work in all
    # One write per second of work (after items 500 and 1000), then the final one.
    assert len(store.writes) == 3
    assert [w.next_index for w in store.writes[:2]] == [500, 1000]
    assert store.writes[-1].finished


def test_a_kube_store_run_under_the_default_policy_writes_every_ten_seconds_of_work(
    store_dir: Path,
) -> None:
    # The store's kind is what the default goes by (a recording store stands in for it).
    settings = Settings(batch_name="unit", store="kube", directory=store_dir, handle_signals=False)
    clock, store = FakeClock(), RecordingStore(store_dir)
    run = Run(settings, store, store.outputs, store.steps, clock=clock)
    try:
        for item in run.items(range(800)):  # 50 s of work in all
            with item:
                clock.advance(0.0625)
    finally:
        atexit.unregister(run._atexit)
    # One write per 10 s of work (after items 160, 320, ... 800), then the final one.
    assert [w.next_index for w in store.writes[:-1]] == [160, 320, 480, 640, 800]
    assert store.writes[-1].finished


def test_every_item_policy_writes_after_each_item(make_run: MakeRun) -> None:
    policy = CheckpointPolicy(every_items=1, min_interval_seconds=0)
    store = run_items(make_run, 20, step=0.0, policy=policy)
    assert [w.next_index for w in store.writes[:20]] == list(range(1, 21))
    assert store.writes[-1].finished


def test_cost_policy_writes_when_the_unsaved_cost_passes_two_dollars(make_run: MakeRun) -> None:
    clock = FakeClock()
    policy = CheckpointPolicy(cost_usd=2.0, every_seconds=NEVER, min_interval_seconds=0)
    run = make_run(clock=clock, policy=policy)
    store = run._store
    assert isinstance(store, RecordingStore)
    for item in run.items(range(10)):
        with item:
            item.add_usage(tokens=100, cost_usd=0.75)
    # 0.75 $ per item: due after items 3 (2.25 $), 6 and 9; then the final write.
    assert [w.next_index for w in store.writes] == [3, 6, 9, 0]
    assert store.writes[-1].cost_usd == pytest.approx(7.5)


def test_the_final_write_happens_even_when_no_trigger_fired(make_run: MakeRun) -> None:
    store = run_items(make_run, 5, step=0.001)
    assert len(store.writes) == 1
    assert (store.writes[0].finished, store.writes[0].items_done) == (True, 5)


def test_breaking_out_of_the_loop_flushes_the_pending_items(
    make_run: MakeRun, store_dir: Path
) -> None:
    clock = FakeClock()
    run = make_run(clock=clock)
    for item in run.items(range(100)):
        with item:
            pass
        if item.index == 6:
            break
    # The generator is closed by the break; its close() wrote items 0-6.
    checkpoint = read_status(store_dir)["checkpoint"]
    assert (checkpoint["completed"], checkpoint["nextIndex"]) == ("0-6", 7)
    assert not checkpoint["finished"]


def test_an_exception_in_an_item_flushes_what_was_done_before_it(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run(clock=FakeClock())

    def work() -> None:
        for item in run.items(range(100)):
            with item:
                if item.index == 4:
                    raise RuntimeError("model API timed out")

    with pytest.raises(RuntimeError, match="model API timed out"):
        work()
    checkpoint = read_status(store_dir)["checkpoint"]
    assert (checkpoint["completed"], checkpoint["nextIndex"]) == ("0-3", 4)
    assert checkpoint["lastErrorIndex"] == 4
    assert checkpoint["lastError"] == "RuntimeError: model API timed out"


def test_the_interpreter_exit_hook_flushes_a_loop_left_open(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run(clock=FakeClock())
    items = run.items(range(100))
    for _ in range(3):
        with next(items):
            pass
    assert read_status(store_dir)["checkpoint"]["completed"] == ""  # nothing due yet
    run._atexit()  # what atexit calls when the interpreter exits
    assert read_status(store_dir)["checkpoint"]["completed"] == "0-2"
