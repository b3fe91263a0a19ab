"""docs/walkthrough.md tells a user to type exactly what tests/e2e/kind-e2e.sh runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "e2e" / "kind-e2e.sh"
WALKTHROUGH = ROOT / "docs" / "walkthrough.md"

#: The script's variables, as the walkthrough spells them out.
SPELLED_OUT = {'"$cluster"': "resumable-batch", '"$timeout"': "300s"}


def script_commands() -> list[str]:
    """The commands between `# walkthrough:begin` and `# walkthrough:end`, without `say`."""
    commands: list[str] = []
    inside = False
    for line in SCRIPT.read_text().splitlines():
        stripped = line.strip()
        if stripped == "# walkthrough:begin":
            inside = True
        elif stripped == "# walkthrough:end":
            inside = False
        elif inside and stripped and not stripped.startswith(("#", "say ")):
            for variable, value in SPELLED_OUT.items():
                stripped = stripped.replace(variable, value)
            commands.append(stripped)
    return commands


def walkthrough_commands() -> list[str]:
    """The lines of the walkthrough's ```sh blocks."""
    blocks = re.findall(r"^```sh\n(.*?)^```", WALKTHROUGH.read_text(), flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_walkthrough_and_e2e_script_run_the_same_commands() -> None:
    assert script_commands() == walkthrough_commands()


def test_walkthrough_covers_every_step_of_the_issue() -> None:
    commands = " ; ".join(walkthrough_commands())
    for step in (
        "kind create cluster",
        "kind load docker-image",
        "helm install",
        "kubectl apply -f examples/",
        "helm uninstall",
        "kind delete cluster",
    ):
        assert step in commands, step
    assert "resuming at item 21/50" in WALKTHROUGH.read_text()


def test_walkthrough_applies_the_example_the_images_provide() -> None:
    example = (ROOT / "examples" / "summarizer-batch.yaml").read_text()
    assert "image: resumable-batch/worker:dev" in example
    assert "resumable.examples.summarizer" in example
    assert "SUMMARIZER_CRASH_AFTER" in example
    assert "kill" in example


def test_readme_walkthrough_runs_the_same_commands_as_the_e2e_script() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("these are the steps `make e2e` runs")
    block = readme[readme.index("```sh\n", start) + 6 : readme.index("```\n", start + 60)]
    assert [line.strip() for line in block.splitlines() if line.strip()] == script_commands()
