"""A worker command that cannot start: refused up front, or the batch ends clearly (issue 21).

Before anything runs, `resumable run` refuses a command exec would refuse (not
executable, neither a program nor a ``#!`` script, a ``#!`` interpreter this
machine lacks) and an argument or env value over what exec takes, naming the
field. One that fails to exec all the same (it changed since, or the shell's
environment pushed it over) used to end `resumable run` with "cannot run ...:
Argument list too long" and leave the batch shown Running, or retried an
exit 127 up to maxRestarts: now the attempt ends as a pod whose container
could not start (StartError) and the batch fails at once, reason StartFailed,
with the exec's error. Real files, real `resumable run`, real subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resumable.v1alpha1 import MAX_EXEC_STRING_BYTES, ResumableBatch
from resumable_runner.runner import LocalRunner

RESUMABLE = Path(sys.executable).parent / "resumable"
CONTAINER = "spec.template.spec.containers[0]"


def manifest(command: list[str], env: list[dict[str, str]] | None = None) -> dict[str, object]:
    container: dict[str, object] = {"name": "worker", "command": command}
    if env:
        container["env"] = env
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "cmd"},
        "spec": {
            "retry": {"maxRestarts": 3, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
            "template": {"spec": {"containers": [container]}},
        },
    }


def script(tmp_path: Path, name: str, text: str, *, executable: bool = True) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)
    return f"./{name}"


def refused(tmp_path: Path, body: dict[str, object], big: str = "") -> str:
    text = yaml.safe_dump(body, width=2**20)
    (tmp_path / "batch.yaml").write_text(text.replace("BIG-VALUE", big))
    result = subprocess.run(
        [str(RESUMABLE), "run", "batch.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr[-2000:]
    assert result.stdout == ""
    assert not (tmp_path / ".resumable").exists()  # nothing ran
    return lines[0]


@pytest.mark.parametrize(
    ("name", "text", "executable", "expected"),
    [
        ("work.py", "print(1)\n", False, "work.py is not executable: chmod +x it"),
        ("work.sh", "echo hi\n", True, "neither a program nor a script with a #! line"),
        ("work", "#!/no/such/python\n", True, "its #! interpreter /no/such/python is not"),
        ("env.py", "#!/usr/bin/env no-such-python-xyz\n", True, "'no-such-python-xyz', not found"),
    ],
    ids=["not-executable", "no-shebang", "missing-interpreter", "env-missing-program"],
)
def test_a_command_exec_would_refuse_is_refused_before_anything_runs(
    tmp_path: Path, name: str, text: str, executable: bool, expected: str
) -> None:
    command = script(tmp_path, name, text, executable=executable)
    line = refused(tmp_path, manifest([command]))
    assert line.startswith(f"error: batch.yaml: {CONTAINER}.command: {command!r}: "), line
    assert expected in line, line


def test_a_runnable_script_is_not_refused(tmp_path: Path) -> None:
    command = script(tmp_path, "work.py", f"#!{sys.executable}\nprint('ran')\n")
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(manifest([command])))
    result = subprocess.run(
        [str(RESUMABLE), "run", "batch.yaml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert "[cmd-1] ran" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("size", [300 * 1024, 20 * 1024 * 1024], ids=["300KiB", "20MiB"])
def test_an_env_value_over_what_exec_takes_is_refused_naming_the_field(
    tmp_path: Path, size: int
) -> None:
    env = [{"name": "SMALL", "value": "1"}, {"name": "BIG", "value": "BIG-VALUE"}]
    line = refused(tmp_path, manifest(["true"], env=env), big="x" * size)
    if size > 1536 * 1024:  # over what a cluster stores in one object: named by its line
        assert "more than a cluster stores in one object; line " in line, line
        assert "value: xxxx" in line, line
    else:
        assert (
            f"{CONTAINER}.env[1].value: String should have at most {MAX_EXEC_STRING_BYTES}" in line
        )
        assert "the most Linux takes in one argument or environment string" in line


def test_an_env_string_just_over_what_exec_takes_in_bytes_is_refused(tmp_path: Path) -> None:
    value = "é" * (MAX_EXEC_STRING_BYTES // 2)  # under the limit in characters, over in bytes
    line = refused(tmp_path, manifest(["true"], env=[{"name": "TEXT", "value": value}]))
    assert f"{CONTAINER}.env[0] (TEXT): 128 KiB, over the 128 KiB Linux takes" in line, line


def run_directly(tmp_path: Path, command: list[str], **kw: object) -> tuple[str, str, object]:
    """Run through LocalRunner itself, past the checks `resumable run` makes first."""
    batch = ResumableBatch.model_validate(manifest(command))
    runner = LocalRunner(batch, tmp_path / "state", **kw)  # type: ignore[arg-type]
    result = runner.run()
    failed = next(c for c in result.status.conditions if c.type == "Failed")
    return result.phase, failed.reason, (failed.message, result.attempts)


def test_a_command_that_fails_to_exec_ends_the_batch_at_once_with_the_reason(
    tmp_path: Path,
) -> None:
    phase, reason, (message, attempts) = run_directly(tmp_path, ["./gone-since-the-check"])
    assert (phase, reason, attempts) == ("Failed", "StartFailed", 1)
    assert message == (
        "Attempt 1's worker cmd-1 could not start (exit 127 (StartError)): cannot run "
        "'./gone-since-the-check': No such file or directory; not retried: fix "
        "spec.template.spec.containers[0]"
    )


def test_an_environment_too_long_for_exec_ends_the_batch_instead_of_leaving_it_running(
    tmp_path: Path,
) -> None:
    huge = {"FROM_THE_SHELL": "x" * (MAX_EXEC_STRING_BYTES + 1)}
    phase, reason, (message, attempts) = run_directly(tmp_path, ["true"], extra_env=huge)
    assert (phase, reason, attempts) == ("Failed", "StartFailed", 1)
    assert "Argument list too long" in str(message)
    assert os.path.exists(tmp_path / "state" / "status.json")
