"""Where a local run's outputs are: written by `resumable run`, read by `outputs --local`.

The worker decides where its outputs go from its environment (spec.outputs as
RESUMABLE_OUTPUTS or RESUMABLE_OUTPUT_DIR, its own RESUMABLE_OUTPUT_DIR, or the
state directory); :func:`record` writes the same answer into the state
directory when the runner starts, with the batch identity an S3 key needs, so
the CLI finds the outputs without the manifest. :func:`open_local` opens them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resumable import atomic_write
from resumable import constants as names
from resumable.outputs import open_outputs
from resumable.v1alpha1 import OutputsSpec, ResumableBatch, ResumableBatchStatus

#: spec.outputs, the batch's namespace and the local directory outputs go to.
OUTPUTS_FILE = "outputs.json"
#: The local store's id (resumable._store.INCARNATION_FILE): the uid in a local run's keys.
INCARNATION_FILE = ".incarnation"


def local_output_dir(batch: ResumableBatch, directory: Path, local: Callable[[str], str]) -> Path:
    """The directory holding ``outputs/`` when outputs go to a directory, as the worker finds it."""
    spec = batch.spec.outputs
    if spec.directory is not None:
        return Path(local(spec.directory.path))
    container = batch.spec.template.spec.containers[0]
    for var in container.env:
        if var.name == names.ENV_OUTPUT_DIR and var.value:
            return Path(local(var.value))
    return directory


def record(batch: ResumableBatch, directory: Path, local: Callable[[str], str]) -> None:
    """Write where this run's outputs go into the state directory."""
    data: dict[str, Any] = {
        "outputs": batch.spec.outputs.model_dump(by_alias=True, exclude_none=True),
        "namespace": batch.metadata.namespace or "local",
        "directory": str(local_output_dir(batch, directory, local).absolute()),
    }
    atomic_write(directory / OUTPUTS_FILE, json.dumps(data, indent=1).encode())


def open_local(directory: Path, name: str, status: ResumableBatchStatus) -> Any:
    """The output store of the local run of ``name`` kept in directory (an OutputStore).

    Raises ValueError naming the file when the record is missing or unreadable.
    """
    path = directory / OUTPUTS_FILE
    try:
        data = json.loads(path.read_text())
        spec = OutputsSpec.model_validate(data.get("outputs") or {})
        namespace = str(data["namespace"])
        out_dir = Path(data["directory"]) / "outputs"
    except FileNotFoundError:
        spec, namespace, out_dir = OutputsSpec(), "local", directory / "outputs"
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: cannot read where the outputs are: {exc}") from exc
    try:
        uid = (directory / INCARNATION_FILE).read_text().strip()
    except FileNotFoundError:
        uid = ""
    return open_outputs(
        spec, status=status, namespace=namespace, name=name, uid=uid, directory=out_dir
    )
