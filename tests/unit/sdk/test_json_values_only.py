"""Outputs, step results and run.context hold JSON values only, refused where they are set.

A set, an object or NaN was once stored as a string (or as bare ``NaN``, which
is not JSON); now the assignment itself raises, naming the item, step or key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from runkit import MakeRun, read_status

NOT_JSON: list[tuple[Any, type[Exception], str]] = [
    ({"s": {1, 2}}, TypeError, "set"),
    (object(), TypeError, "object"),
    (float("nan"), ValueError, "NaN"),
    ({"x": [1.0, math.inf]}, ValueError, "Infinity"),
]
IDS = ["set", "object", "nan", "nested-infinity"]


@pytest.mark.parametrize(("value", "error", "named"), NOT_JSON, ids=IDS)
def test_an_output_that_is_not_json_is_refused_where_it_is_set_naming_the_item(
    make_run: MakeRun, store_dir: Path, value: Any, error: type[Exception], named: str
) -> None:
    run = make_run()
    for item in run.items(["a", "b"]):
        with item:
            if item.index == 1:
                with pytest.raises(error) as caught:
                    item.output = value
                assert "item 2" in str(caught.value)
                assert named in str(caught.value)
            else:
                item.output = {"ok": [1, 2.5, None]}
    run.close()
    outputs = sorted((store_dir / "outputs").glob("*.json"))
    assert [json.loads(p.read_text())["output"] for p in outputs] == [{"ok": [1, 2.5, None]}]
    assert read_status(store_dir)["checkpoint"]["finished"] is True


def test_an_output_changed_after_it_was_set_is_still_checked_at_commit(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    items = run.items(["a"])
    item = next(items)
    item.output = {"tags": []}
    item.output["tags"] = {"b", "a"}
    with pytest.raises(TypeError, match="item 1's output"):
        next(items, None)  # moving on commits the item
    assert not list((store_dir / "outputs").glob("*.json"))


@pytest.mark.parametrize(("value", "error", "named"), NOT_JSON, ids=IDS)
def test_a_step_result_that_is_not_json_is_refused_naming_the_step(
    make_run: MakeRun, value: Any, error: type[Exception], named: str
) -> None:
    run = make_run()
    for item in run.items(["a"]):
        with item:
            with pytest.raises(error) as caught:
                item.step("call", lambda: value)
            assert "step '0-call'" in str(caught.value)
            assert named in str(caught.value)
            assert item.step("call", lambda: {"ok": 1}) == {"ok": 1}  # nothing was saved


@pytest.mark.parametrize(("value", "error", "named"), NOT_JSON, ids=IDS)
def test_a_context_value_that_is_not_json_is_refused_where_it_is_set_naming_the_key(
    make_run: MakeRun, store_dir: Path, value: Any, error: type[Exception], named: str
) -> None:
    run = make_run()
    run.context["cursor"] = "page-2"
    with pytest.raises(error) as caught:
        run.context["client"] = value
    assert "run.context['client']" in str(caught.value)
    assert named in str(caught.value)
    with pytest.raises(error, match=r"run.context\['client'\]"):
        run.context.update(client=value)
    with pytest.raises(error, match=r"run.context\['client'\]"):
        run.context.setdefault("client", value)
    with pytest.raises(error, match=r"run.context\['client'\]"):
        run.context = {"client": value}
    run.checkpoint()
    assert read_status(store_dir)["checkpoint"]["context"]["user"] == {"cursor": "page-2"}


def test_a_context_value_changed_in_place_is_refused_at_the_write_naming_the_key(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    run.context["seen"] = []
    run.context["seen"].append(object())
    with pytest.raises(TypeError, match=r"run.context\['seen'\]"):
        run.checkpoint()
    run.context["seen"] = ["ok"]
    run.checkpoint()
    assert read_status(store_dir)["checkpoint"]["context"]["user"] == {"seen": ["ok"]}


def test_a_second_step_of_the_same_name_in_one_item_is_an_error_naming_it(
    make_run: MakeRun,
) -> None:
    run = make_run()
    for item in run.items(["a"]):
        with item:
            assert item.step("call", lambda: 1) == 1
            with pytest.raises(ValueError, match="'call'") as caught:
                item.step("call", lambda: 2)
            assert "item 1" in str(caught.value)
            assert item.step("other", lambda: 3) == 3


def test_a_step_tried_again_after_it_raised_runs_again(make_run: MakeRun) -> None:
    run = make_run()
    tries: list[int] = []

    def flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("once")
        return 7

    for item in run.items(["a"]):
        with item:
            with pytest.raises(ConnectionError):
                item.step("call", flaky)
            assert item.step("call", flaky) == 7
    assert len(tries) == 2
