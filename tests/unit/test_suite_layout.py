"""The suite's layout: a test's tier is its folder's, and no file says otherwise.

tests/conftest.py marks every test with the tier of its folder (tests/tiers.py).
A ``pytest.mark.unit`` (or another tier) written in a file under a folder of a
different tier would put that test in two tiers, so `make test-unit` would run
it without the servers it needs (or the other way round).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.tiers import TESTS, TIER_OF_FOLDER, TIERS, tier_of

#: Folders under tests/ that hold no tests: helpers, build scripts, sources.
NOT_TESTS = {"controlplane", "tools"}


def suite_files() -> list[Path]:
    """Every test module under tests/, outside the folders that hold no tests."""
    return sorted(
        path
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in NOT_TESTS
    )


def tier_markers(path: Path) -> set[str]:
    """The tier markers a file writes itself: ``pytest.mark.<tier>`` anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in TIERS
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "pytest"
        ):
            found.add(node.attr)
    return found


def test_every_test_file_lives_in_a_tier_folder() -> None:
    outside = [str(p.relative_to(TESTS)) for p in suite_files() if tier_of(p) is None]
    assert outside == [], f"not under one of {sorted(TIER_OF_FOLDER)}: {outside}"


def test_no_test_file_marks_its_own_tier() -> None:
    """The folder says the tier; a marker in the file could only repeat or contradict it."""
    marked = {
        str(path.relative_to(TESTS)): sorted(markers)
        for path in suite_files()
        if path.name != "test_suite_layout.py" and (markers := tier_markers(path))
    }
    assert marked == {}, f"tier markers set in files, not by their folder: {marked}"


def test_the_folders_name_exactly_the_tiers_pyproject_registers() -> None:
    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    registered = {line.split(":", 1)[0].strip() for line in markers}
    assert set(TIERS) == registered
    assert set(TIER_OF_FOLDER.values()) == set(TIERS)


def test_a_test_carries_its_folders_tier_without_marking_itself(
    request: pytest.FixtureRequest,
) -> None:
    tiers = {m.name for m in request.node.iter_markers() if m.name in TIERS}
    assert tiers == {"unit"}


def test_the_check_sees_a_marker_that_disagrees(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n"
        "pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]\n"
        "@pytest.mark.e2e\n"
        "def test_x() -> None: ...\n"
    )
    assert tier_markers(sample) == {"unit", "e2e"}
