"""Chart tests (integration tier): test_chart_render.py renders the chart with helm;
the others apply it to the real test API server (fixtures from tests/kube/plugin.py,
loaded for every tier by pyproject's addopts).

helm is $HELM or tests/tools/helm.sh's cached build (built on first use). Without
it the tests skip with the reason, except in CI (CI=true), where they fail.
"""

import sys
from pathlib import Path

import pytest

# `tests.*` must be importable however pytest was started (pytest or python -m pytest).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.chart.chartlib import Helm, HelmUnavailableError, find_helm  # noqa: E402
from tests.kube.plugin import in_ci  # noqa: E402


@pytest.fixture(scope="session")
def helm_binary() -> str:
    try:
        return find_helm()
    except HelmUnavailableError as exc:
        if in_ci():
            pytest.fail(f"helm unavailable (CI=true, so this fails): {exc}", pytrace=False)
        pytest.skip(f"helm unavailable: {exc}")


@pytest.fixture(scope="session")
def helm(helm_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm with private cache/config/data directories."""
    return Helm(helm_binary, tmp_path_factory.mktemp("helm"))
