"""The README and docs/ say only what works: links resolve, commands exist, examples run.

What a new user copies from README.md must work as written: its relative links
(and those of docs/*.md and the chart README) lead to a file and, where given, a
heading there; every `make TARGET` it names is a target `make help` lists; every
`resumable COMMAND` named in README.md or docs/ is a real subcommand taking the
flags shown; the SDK example runs on a local store, and the same example with the
README's manifest runs under the README's `resumable run` command. The README
stays short (under 160 lines): reference material belongs in docs/. And the
reference pages keep up with the code: docs/api.md names every spec, status and
checkpoint field, condition type, reason and event; docs/sdk.md every RESUMABLE_*
variable the SDK reads; docs/operator.md every setting and metric of the operator.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from resumable import constants, v1alpha1

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "charts/resumable-batch/README.md"]
#: The installed console script, as the README tells people to use it.
RESUMABLE = Path(sys.executable).parent / "resumable"
#: No kubeconfig reachable and no RESUMABLE_* settings: a fresh shell on a laptop.
LAPTOP_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("RESUMABLE_")},
    "KUBECONFIG": "/nonexistent/kubeconfig",
}
LAPTOP_ENV.pop("KUBERNETES_SERVICE_HOST", None)

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", flags=re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^#{1,6} +(.+?) *#* *$", flags=re.M)
MAKE = re.compile(r"(?:^|[\s;&|])make((?: +[a-z][a-z0-9_-]*)+)")
COMMAND = re.compile(r"(?:^|[\s;&|(])resumable +([a-z][a-z-]*)(.*)")
FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def blocks(path: Path, language: str) -> list[str]:
    """The bodies of the page's fenced code blocks in that language."""
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def prose(path: Path) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", path.read_text())


def code_snippets(path: Path) -> list[str]:
    """What a reader may type: inline code spans, and shell lines without comments."""
    spans = CODE_SPAN.findall(prose(path))
    lines = [
        line.split(" #", 1)[0].strip()
        for body in blocks(path, "sh")
        for line in body.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return spans + lines


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub makes it."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor a page's headings make (a repeated one gets -1, -2 ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in HEADING.findall(prose(path)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def relative_links(path: Path) -> list[str]:
    """The page's links that point into this repository."""
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # https:, mailto: ...
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_links_to_every_docs_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not lead to: {missing}"


def test_slugs_follow_githubs_rule() -> None:
    assert slug("One replica acts: leader election") == "one-replica-acts-leader-election"
    assert slug("The SDK: `resumable`") == "the-sdk-resumable"
    assert slug("Write after success, never before") == "write-after-success-never-before"


@cache
def make_targets() -> frozenset[str]:
    """The targets `make help` lists."""
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    return frozenset(line.split()[0] for line in plain.splitlines() if line.strip())


def test_every_make_target_the_readme_names_is_in_make_help() -> None:
    named = {
        target
        for snippet in code_snippets(README)
        for match in MAKE.finditer(snippet)
        for target in match.group(1).split()
    }
    assert {"install", "demo", "test"} <= named, "the README's two set-up commands"
    assert named - make_targets() == set()


def test_the_two_setup_commands_open_the_quick_start() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1]
    first_block = FENCE.search(quick_start)
    assert first_block is not None
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(2).splitlines()]
    assert commands == ["make install demo", "make test"]


def commands_named(pages: list[Path]) -> dict[str, set[str]]:
    """Each `resumable COMMAND` in the pages' code, with the flags shown after it."""
    found: dict[str, set[str]] = {}
    for page in pages:
        for snippet in code_snippets(page):
            for match in COMMAND.finditer(snippet):
                flags = set(FLAG.findall(match.group(2)))
                found.setdefault(match.group(1), set()).update(flags)
    return found


def resumable_help(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RESUMABLE), *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=LAPTOP_ENV,
    )


def test_every_resumable_command_in_the_docs_is_real_and_takes_the_flags_shown() -> None:
    named = commands_named(PAGES)
    assert {"run", "status", "logs"} <= named.keys(), "the README's local run"
    wrong = []
    for command, flags in sorted(named.items()):
        shown = resumable_help(command)
        if shown.returncode != 0:
            wrong.append(f"resumable {command}: exit {shown.returncode} {shown.stderr.strip()}")
            continue
        help_flags = set(FLAG.findall(shown.stdout))
        wrong += [f"resumable {command} {flag}" for flag in sorted(flags - help_flags)]
    assert not wrong, f"commands or flags the CLI does not have: {wrong}"


def test_a_made_up_command_is_not_taken_for_a_real_one() -> None:
    assert resumable_help("frobnicate").returncode != 0


def test_the_readme_stays_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines < 160, f"README.md has {lines} lines: move reference material into docs/"


def the_worker() -> str:
    (python,) = blocks(README, "python")
    return python


def test_the_readme_sdk_example_runs_on_a_local_store(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(the_worker())
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**LAPTOP_ENV, "RESUMABLE_DIR": str(state)},
    )
    assert done.returncode == 0, done.stderr
    checkpoint = json.loads((state / "status.json").read_text())["checkpoint"]
    assert (checkpoint["finished"], checkpoint["itemsDone"]) == (True, 200)
    first = json.loads((state / "outputs" / "00000000.json").read_text())
    assert first["output"] == "DOCUMENT 0"
    assert len(list((state / "outputs").glob("*.json"))) == 200


def test_the_readme_worker_and_manifest_run_with_its_local_command(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(the_worker())
    (manifest,) = blocks(README, "yaml")
    (tmp_path / "batch.yaml").write_text(manifest)
    local_run = README.read_text().split("### Run it locally", 1)[1]
    block = FENCE.search(local_run)
    assert block is not None
    (command,) = [line.split("#", 1)[0] for line in block.group(2).splitlines() if line.strip()]
    argv = shlex.split(command)
    assert argv[:2] == ["resumable", "run"]
    done = subprocess.run(
        [str(RESUMABLE), *argv[1:], "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=LAPTOP_ENV,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads((tmp_path / ".resumable" / "my-batch" / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert status["checkpoint"]["itemsDone"] == 200


def test_the_readmes_window_added_to_its_manifest_is_the_nightly_examples_window() -> None:
    (manifest,) = (yaml.safe_load(block) for block in blocks(README, "yaml"))
    (window,) = [span for span in CODE_SPAN.findall(prose(README)) if span.startswith("window:")]
    manifest["spec"].update(yaml.safe_load(window))
    batch = v1alpha1.ResumableBatch.model_validate(manifest)
    (example,) = [
        doc
        for doc in yaml.safe_load_all((ROOT / "examples" / "nightly-batch.yaml").read_text())
        if doc["kind"] == "ResumableBatch"
    ]
    nightly = v1alpha1.ResumableBatch.model_validate(example)
    assert batch.spec.window is not None
    assert nightly.spec.window is not None
    assert batch.spec.window == nightly.spec.window.model_copy(update={"recurrence": None})


# ---------------------------------------------------- the reference pages match the code


def page_text(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def wire_names(model: type[BaseModel]) -> set[str]:
    """A model's field names as written in manifests (camelCase)."""
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_api_page_names_every_spec_status_and_checkpoint_field() -> None:
    text = page_text("api.md")
    names = (
        {f"spec.{n}" for n in wire_names(v1alpha1.ResumableBatchSpec)}
        | {f"spec.checkpoint.{n}" for n in wire_names(v1alpha1.CheckpointPolicy)}
        | {f"spec.retry.{n}" for n in wire_names(v1alpha1.RetryPolicy)}
        | {f"`{n}`" for n in wire_names(v1alpha1.Backoff)}
        | {f"`{n}`" for n in wire_names(v1alpha1.ResumableBatchStatus)}
        | {f"`{n}`" for n in wire_names(v1alpha1.Checkpoint)}
    )
    assert "spec.retry.maxRestarts" in names
    assert {n for n in names if n not in text} == set()


def test_the_api_page_names_every_condition_type_reason_and_event() -> None:
    values = {
        value
        for name, value in vars(constants).items()
        if name.startswith(("REASON_", "EVENT_")) and isinstance(value, str)
    } | {constants.SUCCEEDED, constants.FAILED, constants.SUSPENDED, constants.PROGRESSING}
    assert "PodCreateRetrying" in values
    text = page_text("api.md")
    assert {v for v in values if f"`{v}`" not in text} == set()


def test_the_sdk_page_names_every_worker_setting() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "sdk" / "resumable").glob("*.py"))
    spelled = set(re.findall(r"\bRESUMABLE_[A-Z_]*[A-Z]", source))
    named = {
        value
        for name, value in vars(constants).items()
        if name.startswith("ENV_") and name != "ENV_PREFIX" and isinstance(value, str)
    }
    read = (spelled | named) - {"RESUMABLE_"}
    assert {"RESUMABLE_OUTPUT_DIR", "RESUMABLE_WORKER_ID", "RESUMABLE_STORE"} <= read
    text = page_text("sdk.md")
    assert {v for v in read if f"`{v}`" not in text} == set()


def test_the_operator_page_names_every_setting_and_metric() -> None:
    from resumable_operator import metrics

    config = (ROOT / "operator" / "resumable_operator" / "config.py").read_text()
    settings = {
        f"RESUMABLE_OPERATOR_{n}"
        for n in re.findall(r'(?<![.\w])(?:get|integer)\("([A-Z_]+)"', config)
    }
    assert "RESUMABLE_OPERATOR_LEASE_SECONDS" in settings
    served = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in metrics.Metrics().registry.collect()
    }
    assert "resumable_restarts_total" in served
    text = page_text("operator.md")
    assert {n for n in settings | served if f"`{n}" not in text} == set()
