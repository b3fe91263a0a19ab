"""Settings.from_env: RESUMABLE_* variables, each bad value a ConfigError naming the variable.

Also what start() makes of them: the runner's store under `resumable run`, and a
kube store without the Kubernetes client installed is one line saying what to install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resumable
from resumable import CheckpointPolicy, ConfigError, Settings
from resumable.constants import EXIT_USAGE


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
    assert done.returncode == EXIT_USAGE  # the image lacks it: no retry brings it
    assert done.stderr.splitlines()[-2:] == [
        "resumable.errors.ConfigError: RESUMABLE_STORE=kube needs the Kubernetes client: "
        "pip install 'resumable-batch[kube]'",
        f"resumable: a usage error: exit {EXIT_USAGE}, which is not retried",
    ]
