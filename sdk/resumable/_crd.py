"""Generate the ResumableBatch CRD from the pydantic models in :mod:`resumable.v1alpha1`.

Called by ``make crds`` (``python -m resumable._crd``) and by the test that fails
when the committed ``crds/`` file differs from what the models generate. The
JSON schema pydantic emits is turned into a Kubernetes *structural* schema:
references inlined, optional unions collapsed, ``additionalProperties: false``
dropped (the API server prunes and, with strict field validation, refuses unknown
fields), and JSON-Schema-2020 exclusive bounds rewritten the OpenAPI v3.0 way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from resumable import cron, v1alpha1

CRD_FILENAME = f"{v1alpha1.PLURAL}.{v1alpha1.GROUP}.yaml"

_DROP_KEYS = {"title", "additionalProperties", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one JSON-schema node into its structural-schema form."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(variants) == 1:
            if rest.get("default", ...) is None:
                rest.pop("default")
            return _structural({**variants[0], **rest}, defs)
        raise ValueError(f"cannot express a union in a structural schema: {node}")
    out: dict[str, Any] = {}
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "default" and value is None:
            continue
        if key == "default" and isinstance(value, (dict, list)) and not value:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out["properties"] = {name: _structural(sub, defs) for name, sub in value.items()}
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
            continue
        out[key] = _structural(value, defs)
    if preserve:
        out.setdefault("type", "object")
    if out.get("type") == "object" and not out.get("properties") and not preserve:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model, camelCase field names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    result: dict[str, Any] = _structural(raw, defs)
    return result


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    spec_schema = schema_for(v1alpha1.ResumableBatchSpec)
    status_schema = schema_for(v1alpha1.ResumableBatchStatus)
    status_schema.pop("required", None)
    # A worker slot is written without its fields at their defaults (WorkerSlot's
    # serializer keeps 64 slots small): the API server must not fill them back in.
    for field in status_schema["properties"]["workers"]["items"]["properties"].values():
        field.pop("default", None)
    # A pattern error shows the user a regular expression; a CEL rule can say it in
    # words (the API server skips CEL rules when a pattern already failed, so the
    # rule replaces the pattern here; the models keep it for `resumable run`).
    run_id = spec_schema["properties"]["runId"]
    pattern = run_id.pop("pattern")
    run_id["x-kubernetes-validations"] = [
        {
            "rule": f"self.matches({pattern!r})",
            "message": "spec.runId must be a label value: letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit",
        }
    ]
    _window_rules(spec_schema["properties"]["window"])
    version = {
        "name": v1alpha1.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            {
                "name": "Progress",
                "type": "string",
                "description": "Items done out of the total.",
                "jsonPath": ".status.progress",
            },
            {
                "name": "Restarts",
                "type": "integer",
                "description": "Restarts after failures.",
                "jsonPath": ".status.restarts",
            },
            {
                "name": "Phase",
                "type": "string",
                "description": "Display only; conditions are the API.",
                "jsonPath": ".status.phase",
            },
            {
                "name": "Opens",
                "type": "string",
                "description": "While it waits outside spec.window: when the window opens.",
                "jsonPath": ".status.window.opensAt",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {
                "name": "Message",
                "type": "string",
                "priority": 1,
                "description": "The latest message.",
                "jsonPath": '.status.conditions[?(@.type=="Progressing")].message',
            },
        ],
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": v1alpha1.ResumableBatch.__doc__,
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    # The one metadata field a CRD may constrain. The name labels the
                    # batch's pods, so it must fit a label value. (A root CEL rule did
                    # this before, and added a "<nil>: some validation rules were not
                    # checked" line to every other error.)
                    "metadata": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "maxLength": v1alpha1.MAX_NAME_LENGTH}
                        },
                    },
                    "spec": spec_schema,
                    "status": status_schema,
                },
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{v1alpha1.PLURAL}.{v1alpha1.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "resumable-batch"},
        },
        "spec": {
            "group": v1alpha1.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": v1alpha1.KIND,
                "listKind": f"{v1alpha1.KIND}List",
                "plural": v1alpha1.PLURAL,
                "singular": v1alpha1.SINGULAR,
                "shortNames": list(v1alpha1.SHORT_NAMES),
                "categories": ["batch"],
            },
            "versions": [version],
        },
    }


#: spec.window.schedule as the cron parser reads it, values in range included.
_SCHEDULE_SHAPE = cron.shape()
#: An IANA time zone name's shape.
_ZONE_SHAPE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
#: A CEL expression that fails for a time zone the API server does not know (it has
#: Go's time zone database, as for CronJob's timeZone).
_ZONE_KNOWN = "timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0"


def _window_rules(window: dict[str, Any]) -> None:
    """CEL rules that say in words what spec.window needs (the models check the rest:
    a range that runs backwards, a date that never comes, a time zone the operator's
    database lacks)."""
    fields = window["properties"]
    duration = v1alpha1.DURATION_PATTERN.replace("(?=[0-9])", "")
    fields["schedule"]["x-kubernetes-validations"] = [
        {
            "rule": f"self.matches({_SCHEDULE_SHAPE!r})",
            "message": "spec.window.schedule must be five cron fields (minute 0-59, hour "
            "0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT; "
            "each *, a value, a range a-b, a step /n, or a list) or a macro such as @daily",
        }
    ]
    fields["timeZone"]["x-kubernetes-validations"] = [
        {
            "rule": f"self.matches({_ZONE_SHAPE!r})",
            "message": "spec.window.timeZone must be an IANA time zone name such as Europe/Berlin",
        },
        {
            "rule": f"!self.matches({_ZONE_SHAPE!r}) || {_ZONE_KNOWN}",
            "message": "spec.window.timeZone is not a time zone the API server knows",
        },
    ]
    for name in ("duration", "stopBefore"):
        fields[name]["x-kubernetes-validations"] = [
            {
                "rule": f"self != '' && self.matches({duration!r})",
                "message": f"spec.window.{name} must be hours, minutes and seconds such as "
                "5h, 90m, 1h30m or 45s",
            }
        ]
    well_formed = f"self.duration.matches({duration!r})"
    window["x-kubernetes-validations"] = [
        {
            "rule": f"!({well_formed}) || (duration(self.duration) > duration('0s') && "
            f"duration(self.duration) <= duration('{v1alpha1.MAX_WINDOW_SECONDS // 3600}h'))",
            "message": "spec.window.duration must be more than 0s and at most 168h",
        },
        {
            "rule": f"!has(self.stopBefore) || !({well_formed}) || "
            f"!self.stopBefore.matches({duration!r}) || "
            "duration(self.stopBefore) < duration(self.duration)",
            "message": "spec.window.stopBefore must be shorter than spec.window.duration",
        },
    ]


def render() -> str:
    """The CRD as the YAML text committed in ``crds/``."""
    header = "# Generated from sdk/resumable/v1alpha1.py by `make crds`. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) the CRD file."""
    parser = argparse.ArgumentParser(description="Generate the ResumableBatch CRD.")
    parser.add_argument("--out-dir", type=Path, default=Path("crds"), help="where to write")
    parser.add_argument(
        "--check", action="store_true", help="fail if the file differs instead of writing it"
    )
    args = parser.parse_args(argv)
    path: Path = args.out_dir / CRD_FILENAME
    text = render()
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `make crds`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
