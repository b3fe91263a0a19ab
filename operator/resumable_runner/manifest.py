"""Reading a ResumableBatch manifest for ``resumable run``, refused as the API server would.

``kubectl apply`` and the API server refuse a manifest that is not UTF-8, too big
to store, ambiguous (a key given twice), typed loosely (``totalItems: true``) or
carrying fields the resource does not have, or a pod template the Pod schema
does not take (:mod:`resumable_runner.podschema`); the local runner refuses the same
manifests before anything runs, each with one line that names the file and the
field. What the API server ignores (a ``status:`` block on create, as it does for
a resource with the status subresource) and documents of other kinds are passed
to ``warn``, not refused. Nothing here raises anything but :class:`ManifestError`.

Called by :func:`resumable_runner.runner.load_manifest` (re-exported there), i.e.
by ``resumable run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resumable.v1alpha1 import MAX_EXEC_STRING_BYTES, MAX_NAME_LENGTH, ResumableBatch
from resumable_runner import podschema

#: The biggest manifest read: etcd's default request limit (1.5 MiB), so nothing a
#: cluster could store is refused, and a runaway file is refused before it is parsed.
MAX_MANIFEST_BYTES = 1536 * 1024
#: The most YAML nodes a manifest may expand to, each alias counted as a copy of what
#: it names: a real batch has hundreds; an alias bomb ("billion laughs") has billions.
MAX_NODES = 100_000
#: The top-level fields of a ResumableBatch (the CRD's schema).
TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
#: The fields of an object's metadata (Kubernetes ObjectMeta); any other is unknown.
METADATA_FIELDS = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
#: A name the API server accepts for a batch whose name also labels its pods:
#: a DNS-1123 subdomain no longer than a label value (63).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ManifestError(ValueError):
    """A manifest that cannot run; the message names the file and field."""


def load_manifest(path: Path | str, warn: Callable[[str], None] | None = None) -> ResumableBatch:
    """Read and validate a ResumableBatch manifest; errors name the file and the field.

    ``warn`` is given one line for each part of the file that is ignored (a
    ``status:`` block, documents of other kinds).
    """
    from pydantic import ValidationError

    path = Path(path)
    say = warn or (lambda line: None)
    raw = _the_batch(path, read_documents(path), say)
    if "status" in raw:
        say(
            f"{path}: status: ignored, as the API server ignores it on create "
            "(the run keeps its status in its state directory)"
        )
        raw.pop("status")
    _check_object(path, raw)
    try:
        batch = ResumableBatch.model_validate(raw, strict=True)  # no "3" or true for 3
    except ValidationError as exc:
        raise ManifestError(f"{path}: " + describe_validation_error(exc)) from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: nested too deeply") from exc
    problems = podschema.check_template(raw["spec"]["template"])
    if problems:
        # What the API server refuses when the operator creates the pod (Strict).
        raise ManifestError(
            f"{path}: "
            + "; ".join(problems)
            + f" (the Pod schema of Kubernetes {podschema.kubernetes_version()})"
        )
    if not batch.metadata.name:
        raise ManifestError(f"{path}: metadata.name is required")
    bad_name = check_name(batch.metadata.name)
    if bad_name:  # it becomes a directory and a pod name: never "../x" or "/tmp/x"
        raise ManifestError(f"{path}: {bad_name}")
    first = batch.spec.template.spec.containers[0]
    if not (first.command or first.args):
        # Checked here, before anything runs: there is no image entrypoint locally.
        raise ManifestError(
            f"{path}: spec.template.spec.containers[0].command: required by `resumable run`"
        )
    return batch


def read_documents(path: Path) -> list[Any]:
    """The YAML documents of ``path`` (empty ones left out), read within the limits above."""
    import yaml

    try:
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{path}: over {MAX_MANIFEST_BYTES // 1024} KiB, "
            f"more than a cluster stores in one object{_longest_line(data)}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc
    try:
        loader = yaml.SafeLoader(text)
        try:
            nodes = []
            while loader.check_node():
                nodes.append(loader.get_node())
        finally:
            loader.dispose()
        sizes: dict[int, int] = {}
        if sum(_check_node(path, node, "", sizes) for node in nodes) > MAX_NODES:
            raise ManifestError(f"{path}: over {MAX_NODES} YAML nodes in its documents")
        return [
            d
            for d in (yaml.constructor.SafeConstructor().construct_document(n) for n in nodes)
            if d
        ]
    except yaml.YAMLError as exc:
        # One line: PyYAML's message spans several, with a snippet of the file.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ManifestError(f"{path}: not valid YAML: {problem}{where}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: nested too deeply") from exc


def _longest_line(data: bytes) -> str:
    """Where most of a too-big file is, when one line holds most of it (a huge value)."""
    lines = data.split(b"\n")
    number = max(range(len(lines)), key=lambda i: len(lines[i]))
    line = lines[number]
    if len(line) < MAX_MANIFEST_BYTES // 2:
        return ""
    start = line.strip()[:40].decode(errors="replace")
    return f"; line {number + 1} alone is over {len(line) // 1024} KiB ({start}...)"


def _check_node(path: Path, node: Any, field: str, sizes: dict[int, int]) -> int:
    """``node``'s size once aliases are expanded, refused over :data:`MAX_NODES`.

    Each distinct node is looked at once (an alias reuses the size counted), so an
    alias bomb is refused in time linear in the file. Keys given twice and an alias
    that contains itself are refused too, naming the field.
    """
    import yaml

    known = sizes.get(id(node))
    if known == -1:
        raise ManifestError(f"{path}: {field or 'the document'}: an alias contains itself")
    if known is not None:
        return known
    sizes[id(node)] = -1  # being counted
    size = 1
    children: list[tuple[str, Any]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [(f"{field}[{i}]", item) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            inner = f"{field}.{name}" if field else name
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                line = key.start_mark.line + 1
                first = lines.get((key.tag, key.value))
                if first is not None:
                    raise ManifestError(f"{path}: {inner}: given twice (lines {first} and {line})")
                lines[(key.tag, key.value)] = line
            children += [(inner, key), (inner, value)]
    for inner, child in children:
        size += _check_node(path, child, inner, sizes)
        if size > MAX_NODES:
            raise ManifestError(
                f"{path}: {inner}: over {MAX_NODES} YAML nodes once aliases are expanded"
            )
    sizes[id(node)] = size
    return size


def _the_batch(path: Path, docs: list[Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """The one ResumableBatch document of the file; others are named in ``warn``."""
    batches = [
        i
        for i, d in enumerate(docs, 1)
        if isinstance(d, dict) and d.get("kind") == "ResumableBatch"
    ]
    if not batches:
        raise ManifestError(f"{path}: no ResumableBatch in the file")
    if len(batches) > 1:
        raise ManifestError(
            f"{path}: {len(batches)} ResumableBatch documents (documents "
            f"{', '.join(map(str, batches))}); `resumable run` runs one: give each its own file"
        )
    for i, doc in enumerate(docs, 1):
        if i not in batches:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            what = f"a {kind}" if isinstance(kind, str) and kind else "not a ResumableBatch"
            warn(f"{path}: document {i} ({what}) ignored: `resumable run` runs the ResumableBatch")
    return dict(docs[batches[0] - 1])


def _check_object(path: Path, raw: dict[str, Any]) -> None:
    """Refuse top-level and metadata fields the API server does not know, and loose labels."""
    for key in raw:
        if key not in TOP_LEVEL_FIELDS:
            raise ManifestError(f"{path}: {key}: unknown field")
    metadata = raw.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ManifestError(f"{path}: metadata: must be an object")
    for key in metadata:
        if key not in METADATA_FIELDS:
            raise ManifestError(f"{path}: metadata.{key}: unknown field")
    for part in ("labels", "annotations"):
        values = metadata.get(part)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ManifestError(f"{path}: metadata.{part}: must be a map of strings")
        for key, value in values.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ManifestError(
                    f"{path}: metadata.{part}.{key}: {value!r} must be a string (quote it)"
                )


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a batch (the API server's rule, and the pod label's), or None."""
    if len(name) > MAX_NAME_LENGTH:
        return (
            f"metadata.name: {len(name)} characters, over {MAX_NAME_LENGTH} (the name labels the "
            "batch's pods)"
        )
    if not _NAME.fullmatch(name):
        return (
            f"metadata.name: {name!r} must be lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def describe_validation_error(exc: Any) -> str:
    """One line per problem, each naming the field path as the API server would."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        loc = loc.replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_too_long" and err.get("ctx", {}).get("max_length") == (
            MAX_EXEC_STRING_BYTES
        ):
            msg += (
                " (128 KiB: the most Linux takes in one argument or environment string "
                "when it starts the worker, in a pod as here; a cluster refuses it too)"
            )
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


__all__ = [
    "MAX_MANIFEST_BYTES",
    "MAX_NODES",
    "ManifestError",
    "check_name",
    "describe_validation_error",
    "load_manifest",
    "read_documents",
]
