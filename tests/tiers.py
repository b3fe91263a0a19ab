"""Which tier a test belongs to: the folder under tests/ it lives in, and nothing else.

tests/conftest.py marks every collected test with its folder's tier (so
``pytest -m unit`` selects tests/unit); tests/unit/test_suite_layout.py fails
when a test file sets a tier marker of its own that says otherwise.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: The pytest markers that name a tier (pyproject's [tool.pytest.ini_options] markers).
TIERS = ("unit", "integration", "reliability", "e2e")

#: First folder under tests/ -> the tier of every test in it.
TIER_OF_FOLDER = {
    "unit": "unit",  # no servers, no built binaries
    "integration": "integration",  # the real kube-apiserver and etcd (tests/kube)
    "chart": "integration",  # helm: rendered, then applied to the real API server
    "kube": "integration",  # the harness's own tests, against what it starts
    "reliability": "reliability",  # faults on demand: kmock, stub servers, proxies, SIGKILL
    "e2e": "e2e",  # kind, Docker hosts only
}


def tier_of(path: Path) -> str | None:
    """The tier of a test file at ``path`` (None outside tests/ or outside a tier folder)."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    if len(parts) < 2:
        return None
    return TIER_OF_FOLDER.get(parts[0])
