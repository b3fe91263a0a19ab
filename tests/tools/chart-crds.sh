#!/usr/bin/env bash
# Regenerates the chart's CRD templates (charts/resumable-batch/templates/crds/) from
# crds/*.yaml; `--check` only reports whether they are in sync. See chart_crds.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "$here/chart_crds.py" "$@"
