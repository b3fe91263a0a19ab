"""Manifests the API server refuses are refused by `resumable run` too (issue 21).

Each bad manifest below once ran (the second of two batches ignored, ``true`` read
as 1, a duplicate key's last value used) or ended in a traceback (not UTF-8, an
alias bomb that ran into MemoryError). Run through the real ``resumable`` entry
point: one line on stderr naming the file and the field, exit 1 as every other
manifest error, nothing started. What the API server ignores is run with a warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resumable_runner.manifest import MAX_MANIFEST_BYTES, MAX_NODES, load_manifest

RESUMABLE = Path(sys.executable).parent / "resumable"

GOOD = """\
apiVersion: resumable.dev/v1alpha1
kind: ResumableBatch
metadata:
  name: docs
  labels:
    team: search
spec:
  totalItems: 3
  template:
    spec:
      containers:
        - name: worker
          command: ["true"]
"""


def edited(old: str, new: str) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new, 1).encode()


#: An alias bomb: 9**7 strings once expanded, from a few hundred bytes.
BOMB = "\n".join(
    [f"l0: &l0 [{', '.join(['x'] * 9)}]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 8)]
    + ["kind: ResumableBatch", ""]
).encode()

# (id, file contents, what the one line must contain after "error: bad.yaml: ")
REFUSED = [
    ("not-utf8", edited("name: docs", "name: caf\xe9").replace(b"\xc3\xa9", b"\xe9"), "not UTF-8"),
    ("too-big", GOOD.encode() + b"#" * MAX_MANIFEST_BYTES, "KiB"),
    ("alias-bomb", BOMB, f"over {MAX_NODES} YAML nodes"),
    ("alias-in-itself", b"a: &a [*a]\nkind: ResumableBatch\n", "a[0]: an alias contains itself"),
    ("nested-too-deep", b"kind: ResumableBatch\nspec: " + b"[" * 5000 + b"]" * 5000, "nested"),
    ("two-batches", (GOOD + "---\n" + GOOD).encode(), "2 ResumableBatch documents"),
    (
        "duplicate-key",
        edited("  totalItems: 3\n", "  totalItems: 3\n  totalItems: 4\n"),
        "spec.totalItems: given twice (lines 8 and 9)",
    ),
    (
        "duplicate-key-flow",
        edited("command: [", "command: [x]\n          command: ["),
        "spec.template.spec.containers[0].command: given twice",
    ),
    ("totalItems-true", edited("totalItems: 3", "totalItems: true"), "spec.totalItems:"),
    ("totalItems-string", edited("totalItems: 3", 'totalItems: "3"'), "spec.totalItems:"),
    (
        "maxRestarts-true",
        edited("  totalItems: 3\n", "  totalItems: 3\n  retry: {maxRestarts: true}\n"),
        "spec.retry.maxRestarts:",
    ),
    (
        "suspend-string",
        edited("  totalItems: 3\n", '  totalItems: 3\n  suspend: "yes"\n'),
        "spec.suspend:",
    ),
    ("unknown-top-level", (GOOD + "extra: 1\n").encode(), "extra: unknown field"),
    (
        "unknown-metadata",
        edited("  name: docs\n", "  name: docs\n  nmae: x\n"),
        "metadata.nmae: unknown field",
    ),
    ("list-label", edited("team: search", "team: [search]"), "metadata.labels.team:"),
    ("bool-label", edited("team: search", "team: true"), "metadata.labels.team:"),
    (
        "number-annotation",
        edited("  labels:\n", "  annotations: {rev: 3}\n  labels:\n"),
        "metadata.annotations.rev:",
    ),
]


@pytest.mark.parametrize(("contents", "expected"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])  # fmt: skip
def test_bad_manifest_is_refused_in_one_line_naming_file_and_field(
    tmp_path: Path, contents: bytes, expected: str
) -> None:
    (tmp_path / "bad.yaml").write_bytes(contents)
    result = subprocess.run(
        [str(RESUMABLE), "run", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]  # no traceback
    assert lines[0].startswith("error: bad.yaml: "), lines[0]
    assert expected in lines[0], lines[0]
    assert result.returncode == 1  # as every manifest error (a missing command, a bad name)
    assert result.stdout == ""  # nothing started
    assert not (tmp_path / ".resumable").exists()


def test_status_block_and_other_kinds_run_with_a_warning_naming_what_is_ignored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "batch.yaml"
    other = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    path.write_text(GOOD + "status:\n  phase: Succeeded\n---\n" + other)
    warnings: list[str] = []
    batch = load_manifest(path, warn=warnings.append)
    assert batch.status.phase == ""  # not the file's "Succeeded": the run starts fresh
    assert warnings == [
        f"{path}: document 2 (a ConfigMap) ignored: `resumable run` runs the ResumableBatch",
        f"{path}: status: ignored, as the API server ignores it on create "
        "(the run keeps its status in its state directory)",
    ]


def test_a_good_manifest_loads_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "batch.yaml"
    path.write_text(GOOD)
    warnings: list[str] = []
    batch = load_manifest(path, warn=warnings.append)
    assert (batch.metadata.name, batch.spec.total_items, warnings) == ("docs", 3, [])
