"""Settings.from_env: RESUMABLE_* variables, each bad value a ConfigError naming the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumable import CheckpointPolicy, ConfigError, Settings


def test_no_variables_give_a_local_store_under_dot_resumable() -> None:
    settings = Settings.from_env({})
    assert (settings.batch_name, settings.store) == ("default", "local")
    assert settings.directory == Path(".resumable/default")
    assert (settings.attempt, settings.start_index, settings.output_dir) == (None, None, None)
    assert settings.policy == CheckpointPolicy()
    assert not settings.allow_changed_items


def test_every_variable_is_read() -> None:
    env = {
        "RESUMABLE_BATCH_NAME": "docs",
        "RESUMABLE_NAMESPACE": "team",
        "RESUMABLE_STORE": "local",
        "RESUMABLE_DIR": "/data/state",
        "RESUMABLE_OUTPUT_DIR": "/data/out",
        "RESUMABLE_START_INDEX": "5",
        "RESUMABLE_ATTEMPT": "3",
        "RESUMABLE_TOTAL_ITEMS": "200",
        "RESUMABLE_RUN_ID": "r2",
        "RESUMABLE_WORKER_ID": "pod-abc",
        "RESUMABLE_CHECKPOINT": json.dumps({"everyItems": 10, "costUsd": 2}),
        "RESUMABLE_ALLOW_CHANGED_ITEMS": "true",
    }
    settings = Settings.from_env(env)
    assert (settings.batch_name, settings.namespace, settings.store) == ("docs", "team", "local")
    assert (settings.directory, settings.output_dir) == (Path("/data/state"), Path("/data/out"))
    assert (settings.start_index, settings.attempt, settings.total_items) == (5, 3, 200)
    assert (settings.run_id, settings.worker_id) == ("r2", "pod-abc")
    assert (settings.policy.every_items, settings.policy.cost_usd) == (10, 2.0)
    assert settings.allow_changed_items


def test_the_batch_name_picks_the_default_directory() -> None:
    assert Settings.from_env({"RESUMABLE_BATCH_NAME": "docs"}).directory == Path(".resumable/docs")


BAD = {
    "attempt-not-a-number": ("RESUMABLE_ATTEMPT", "three", "is not an integer"),
    "attempt-negative": ("RESUMABLE_ATTEMPT", "-1", "must not be negative"),
    "start-index-not-a-number": ("RESUMABLE_START_INDEX", "1.5", "is not an integer"),
    "total-items-negative": ("RESUMABLE_TOTAL_ITEMS", "-3", "must not be negative"),
    "store-unknown": ("RESUMABLE_STORE", "redis", "must be 'local' or 'kube'"),
    "checkpoint-not-json": ("RESUMABLE_CHECKPOINT", "{every: 1}", "is not a valid policy"),
    "checkpoint-every-items-zero": (
        "RESUMABLE_CHECKPOINT",
        '{"everyItems": 0}',
        "is not a valid policy",
    ),
    "checkpoint-unknown-field": ("RESUMABLE_CHECKPOINT", '{"every": 5}', "is not a valid policy"),
}


@pytest.mark.parametrize(("name", "value", "problem"), BAD.values(), ids=BAD.keys())
def test_a_bad_value_is_a_config_error_naming_the_variable(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(name)
    assert problem in str(caught.value)


def test_a_bad_policy_error_names_the_policy_field() -> None:
    with pytest.raises(ConfigError, match="everyItems"):
        Settings.from_env({"RESUMABLE_CHECKPOINT": '{"everyItems": 0}'})


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_allow_changed_items_accepts_the_usual_spellings_of_yes(value: str) -> None:
    assert Settings.from_env({"RESUMABLE_ALLOW_CHANGED_ITEMS": value}).allow_changed_items


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_allow_changed_items_is_off_otherwise(value: str) -> None:
    assert not Settings.from_env({"RESUMABLE_ALLOW_CHANGED_ITEMS": value}).allow_changed_items


def test_a_cluster_without_a_named_batch_still_uses_the_local_store() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "RESUMABLE_NAMESPACE": "team"}
    assert Settings.from_env(env).store == "local"
    named = {**env, "RESUMABLE_BATCH_NAME": "docs"}
    assert Settings.from_env(named).store == "kube"
