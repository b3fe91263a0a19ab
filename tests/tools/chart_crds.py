"""Copy the generated CRDs in crds/ into the Helm chart as templates.

Each crds/<name>.yaml becomes charts/resumable-batch/templates/crds/<name>.yaml: the
same YAML, wrapped in ``{{- if .Values.crds.enabled }}``, with the chart's labels and,
under ``crds.keep``, the ``helm.sh/resource-policy: keep`` annotation added to its
metadata. Run by ``make crds`` / ``make chart-crds`` (through chart-crds.sh); the chart
tests call :func:`render` to prove the templates are in sync.

Usage: python tests/tools/chart_crds.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
CHART_DIR = REPO_ROOT / "charts" / "resumable-batch"
TEMPLATES_DIR = CHART_DIR / "templates" / "crds"

#: Label keys the chart's labels helper sets; the CRD's own values for them are dropped.
CHART_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
    }
)


#: The chart's labels helper, called with the CRD's component.
LABELS_HELPER = '"resumable-batch.labels" (dict "context" $ "component" "crd")'


class ChartCrdError(ValueError):
    """A CRD file cannot be turned into a template."""


def _metadata_block(lines: list[str]) -> tuple[int, int]:
    """The [start, end) line range of the top-level ``metadata:`` block of one document."""
    try:
        start = lines.index("metadata:")
    except ValueError:
        raise ChartCrdError("no top-level 'metadata:' line") from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    return start, end


def _split_keys(block: list[str]) -> dict[str, list[str]]:
    """The metadata block's keys (two-space indented) with their lines, in order."""
    keys: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in block:
        if line.startswith("  ") and not line.startswith("   ") and line.strip():
            key = line.strip().split(":", 1)[0]
            current = keys.setdefault(key, [])
        if current is None:
            raise ChartCrdError(f"unexpected line in metadata: {line!r}")
        current.append(line)
    return keys


def _document(text: str) -> str:
    lines = text.splitlines()
    start, end = _metadata_block(lines)
    keys = _split_keys(lines[start + 1 : end])
    out = lines[: start + 1]
    for key, key_lines in keys.items():
        if key not in ("labels", "annotations"):
            out.extend(key_lines)
    out.append("  labels:")
    out.append(f"    {{{{- include {LABELS_HELPER} | nindent 4 }}}}")
    for line in keys.get("labels", [])[1:]:
        if line.strip().split(":", 1)[0] not in CHART_LABELS:
            out.append(line)
    annotations = keys.get("annotations", [])[1:]
    if annotations:
        out.append("  annotations:")
        out.extend(annotations)
        out.append("    {{- if .Values.crds.keep }}")
        out.append("    helm.sh/resource-policy: keep")
        out.append("    {{- end }}")
    else:
        out.append("  {{- if .Values.crds.keep }}")
        out.append("  annotations:")
        out.append("    helm.sh/resource-policy: keep")
        out.append("  {{- end }}")
    out.extend(lines[end:])
    return "\n".join(out)


def render(source: Path) -> str:
    """The chart template for one CRD file."""
    text = source.read_text()
    if "{{" in text or "}}" in text:
        raise ChartCrdError(f"{source}: '{{{{' or '}}}}' would be read as a template action")
    header = (
        f"{{{{- /* Generated from crds/{source.name} by `make chart-crds`."
        " Do not edit by hand. */}}\n"
        "{{- if .Values.crds.enabled }}\n"
    )
    docs = [d for d in text.split("\n---\n") if d.strip()]
    body = "\n---\n".join(_document(doc) for doc in docs)
    return f"{header}{body.rstrip()}\n{{{{- end }}}}\n"


def expected() -> dict[Path, str]:
    """Every template this script writes, by path."""
    sources = sorted(CRDS_DIR.glob("*.yaml"))
    if not sources:
        raise ChartCrdError(f"no CRDs in {CRDS_DIR}")
    return {TEMPLATES_DIR / source.name: render(source) for source in sources}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the templates are stale")
    args = parser.parse_args(argv)
    wanted = expected()
    stale = {p for p, text in wanted.items() if not p.exists() or p.read_text() != text}
    extra = {p for p in TEMPLATES_DIR.glob("*.yaml") if p not in wanted}
    if args.check:
        for path in sorted(stale | extra):
            print(f"chart_crds: out of date: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        if stale or extra:
            print("chart_crds: run `make chart-crds`", file=sys.stderr)
            return 1
        return 0
    TEMPLATES_DIR.mkdir(parents=True, exist_ok=True)
    for path in extra:
        path.unlink()
    for path, text in wanted.items():
        if path in stale:
            path.write_text(text)
            print(f"chart_crds: wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
