"""Generate ``pod-schema.json``, the Pod template schema ``resumable run`` checks against.

    python -m resumable_runner.podschema_gen          # what `make pod-schema` runs

Derived from the official Kubernetes client's models: each model's
``openapi_types`` (the OpenAPI type of every field) and ``attribute_map`` (its
name on the wire), walked from ``V1PodTemplateSpec``. The client is generated
from the Kubernetes OpenAPI document of one release, so the result is the Pod
schema of that release, in a compact form :mod:`resumable_runner.podschema`
reads with the base dependencies only (the client is needed here, not at run
time). tests/unit/runner/test_pod_schema.py checks that the file is what this
module makes from the installed client.

Type expressions in the file: a model name, ``[T]`` (a list of T), ``{T}`` (a
map of string keys to T), or one of :data:`SCALARS`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from resumable_runner.podschema import SCALARS, SCHEMA_FILE

#: The model the walk starts from (spec.template of a ResumableBatch).
ROOT = "V1PodTemplateSpec"
#: The client's scalar types, as the file names them.
CLIENT_SCALARS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "datetime": "time",
    # IntOrString (a probe's port) is the only `object` field under a Pod but one:
    "object": "int-or-string",
}
#: Fields the client types as free-form `object` that are not IntOrString.
FREE_FORM = {("V1ManagedFieldsEntry", "fields_v1")}
#: Fields the client types as strings that are resource.Quantity in the API, which
#: takes a number too (``cpu: 1``): the OpenAPI document says so, the client does not.
QUANTITIES = {
    ("V1ResourceRequirements", "limits"),
    ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"),
    ("V1VolumeResourceRequirements", "requests"),
    ("V1PodSpec", "overhead"),
    ("V1EmptyDirVolumeSource", "size_limit"),
    ("V1ResourceFieldSelector", "divisor"),
}
_MODEL = re.compile(r"^[A-Z]\w+$")


def _short(model: str) -> str:
    """A model's name in the file: the client's, without its version prefix."""
    return re.sub(r"^V1", "", model)


def generate() -> dict[str, Any]:
    """The compact Pod template schema, from the installed Kubernetes client."""
    import kubernetes
    from kubernetes.client import models

    types: dict[str, dict[str, str]] = {}

    def expression(model: str, attribute: str, client_type: str) -> str:
        if (model, attribute) in FREE_FORM:
            return "any"
        if client_type.startswith("List[") and client_type.endswith("]"):
            return "[" + expression(model, attribute, client_type[5:-1]) + "]"
        if client_type.startswith("Dict[str, ") and client_type.endswith("]"):
            return "{" + expression(model, attribute, client_type[10:-1]) + "}"
        if (model, attribute) in QUANTITIES:
            return "quantity"
        if client_type in CLIENT_SCALARS:
            return CLIENT_SCALARS[client_type]
        if not _MODEL.match(client_type):
            raise ValueError(f"{model}.{attribute}: client type {client_type!r} not understood")
        walk(client_type)
        return _short(client_type)

    def walk(model: str) -> None:
        name = _short(model)
        if name in types:
            return
        cls = getattr(models, model)
        fields: dict[str, str] = {}
        types[name] = fields  # before the fields: a model may contain itself
        for attribute, client_type in sorted(cls.openapi_types.items()):
            fields[cls.attribute_map[attribute]] = expression(model, attribute, client_type)
        types[name] = dict(sorted(fields.items()))

    walk(ROOT)
    for name, fields in types.items():
        for field, expr in fields.items():
            leaf = expr.strip("[]{}")
            if leaf not in SCALARS and leaf not in types:
                raise ValueError(f"{name}.{field}: {expr!r} names no type")
    release = _openapi_release()
    return {
        "source": f"kubernetes client {kubernetes.__version__} (OpenAPI {release})",
        "kubernetes": release.removeprefix("release-"),
        "root": _short(ROOT),
        "types": dict(sorted(types.items())),
    }


def _openapi_release() -> str:
    """The Kubernetes release the client was generated from ("release-1.37")."""
    import kubernetes.client

    match = re.search(r"OpenAPI document: (release-[\d.]+)", kubernetes.client.__doc__ or "")
    if match is None:
        raise ValueError("the kubernetes client does not say which OpenAPI release it is from")
    return match.group(1)


def render(schema: dict[str, Any]) -> str:
    """The file's text: one type per line, so a new release's diff reads well."""
    lines = ["{"]
    for key in ("source", "kubernetes", "root"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(schema[key])},")
    lines.append('  "types": {')
    items = list(schema["types"].items())
    for i, (name, fields) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(fields, sort_keys=True)}{comma}")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the schema (to the file the runner reads, unless --out says otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args(argv)
    schema = generate()
    args.out.write_text(render(schema))
    print(f"{args.out}: {len(schema['types'])} types, from {schema['source']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
