"""The CRD: generated from the pydantic models, structural, and as strict as the models are."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import yaml
from pydantic import ValidationError

from resumable import _crd
from resumable.v1alpha1 import (
    DURATION_PATTERN,
    MAX_WINDOW_SECONDS,
    RUN_ID_PATTERN,
    ResumableBatch,
    ResumableBatchSpec,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / _crd.CRD_FILENAME


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return data


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return dict(only)


@pytest.fixture(scope="module")
def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


# ------------------------------------------------------------------ generation


def test_committed_crd_is_what_the_models_generate() -> None:
    committed, generated = CRD_PATH.read_text(), _crd.render()
    if committed != generated:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    "committed",
                    "generated",
                )
            )[:40]
        )
        pytest.fail(f"{CRD_PATH.relative_to(ROOT)} is out of date: run `make crds`\n{diff}")


def test_crd_names_group_version_kind_and_short_name(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "resumablebatches.resumable.dev"
    assert crd["spec"]["group"] == "resumable.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "ResumableBatch"
    assert crd["spec"]["names"]["shortNames"] == ["rb"]


def test_crd_has_the_status_subresource(version: dict[str, Any]) -> None:
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


# ------------------------------------------------------------------ structural


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a dotted path, depth first."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from schema_nodes(node["items"], f"{path}[]")


def test_schema_is_structural(version: dict[str, Any]) -> None:
    root = version["schema"]["openAPIV3Schema"]
    for path, node in schema_nodes(root):
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            assert forbidden not in node, f"{path or '<root>'} has {forbidden}"
        assert "type" in node, f"{path or '<root>'} has no type"
        if node["type"] == "object" and path != ".metadata":  # the API server owns metadata
            has_fields = bool(node.get("properties"))
            preserves = node.get("x-kubernetes-preserve-unknown-fields") is True
            assert has_fields or preserves, (
                f"{path} is an object with neither properties nor "
                "x-kubernetes-preserve-unknown-fields"
            )


def test_free_form_parts_preserve_unknown_fields(spec_schema: dict[str, Any]) -> None:
    template = spec_schema["properties"]["template"]["properties"]
    assert template["metadata"]["x-kubernetes-preserve-unknown-fields"] is True
    assert template["spec"]["x-kubernetes-preserve-unknown-fields"] is True


def test_backoff_has_the_cel_rule_max_not_below_initial(spec_schema: dict[str, Any]) -> None:
    backoff = spec_schema["properties"]["retry"]["properties"]["backoff"]
    (rule,) = backoff["x-kubernetes-validations"]
    assert "self.maxSeconds >= self.initialSeconds" in rule["rule"]
    assert rule["message"] == (
        "backoff.maxSeconds must be greater than or equal to backoff.initialSeconds "
        "(2 when not set)"  # the server applies defaults before it checks the rule
    )


def test_printer_columns_show_progress_restarts_phase_opens_age_and_message_at_priority_1(
    version: dict[str, Any],
) -> None:
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Progress", "Restarts", "Phase", "Opens", "Age", "Message"]
    # A future time as a string: kubectl shows a date column in the future as <invalid>.
    assert (columns["Opens"]["jsonPath"], columns["Opens"]["type"]) == (
        ".status.window.opensAt",
        "string",
    )
    assert columns["Progress"]["jsonPath"] == ".status.progress"
    assert (columns["Restarts"]["type"], columns["Age"]["type"]) == ("integer", "date")
    assert columns["Message"].get("priority") == 1
    assert "conditions" in columns["Message"]["jsonPath"]
    assert all(c.get("priority", 0) == 0 for name, c in columns.items() if name != "Message")


# ---------------------------------------------- the models reject what the CRD rejects


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in defaults as the API server does before validating."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    out = dict(value)
    for name, child in schema.get("properties", {}).items():
        if name not in out and "default" in child:
            out[name] = copy.deepcopy(child["default"])
        if name in out:
            out[name] = apply_defaults(child, out[name])
    return out


#: The CEL rules in the CRD, as Python, so the test can apply them.
CEL: dict[str, Callable[[Any], bool]] = {
    # CEL's matches() finds the pattern anywhere, as re.search does.
    f"self.matches({RUN_ID_PATTERN!r})": lambda s: re.search(RUN_ID_PATTERN, s) is not None,
    "!has(self.maxSeconds) || !has(self.initialSeconds) || "
    "self.maxSeconds >= self.initialSeconds": (
        lambda o: (
            "maxSeconds" not in o
            or "initialSeconds" not in o
            or o["maxSeconds"] >= o["initialSeconds"]
        )
    ),
    "[has(self.directory), has(self.s3), has(self.status)].filter(x, x).size() <= 1": (
        lambda o: sum(k in o for k in ("directory", "s3", "status")) <= 1
    ),
    "!has(self.outputs) || !has(self.outputs.status) || "
    "!has(self.parallelism) || self.parallelism <= 1": (
        lambda o: "status" not in o.get("outputs", {}) or o.get("parallelism", 1) <= 1
    ),
}

#: spec.window's rules, as the generator writes them, paired with their Python reading.
_WINDOW = _crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
    "spec"
]["properties"]["window"]
_DURATION = DURATION_PATTERN.replace("(?=[0-9])", "")


def _well_formed(text: str) -> bool:
    return text != "" and re.search(_DURATION, text) is not None


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


CEL.update(
    {
        _WINDOW["properties"]["schedule"]["x-kubernetes-validations"][0]["rule"]: lambda s: (
            re.search(_crd._SCHEDULE_SHAPE, s) is not None
        ),
        _WINDOW["properties"]["timeZone"]["x-kubernetes-validations"][0]["rule"]: lambda s: (
            re.search(_crd._ZONE_SHAPE, s) is not None
        ),
        _WINDOW["properties"]["timeZone"]["x-kubernetes-validations"][1]["rule"]: lambda s: (
            re.search(_crd._ZONE_SHAPE, s) is None or _known_zone(s)
        ),
        _WINDOW["properties"]["duration"]["x-kubernetes-validations"][0]["rule"]: _well_formed,
        _WINDOW["properties"]["stopBefore"]["x-kubernetes-validations"][0]["rule"]: _well_formed,
        _WINDOW["x-kubernetes-validations"][0]["rule"]: lambda o: (
            not _well_formed(o["duration"]) or 0 < _seconds(o["duration"]) <= MAX_WINDOW_SECONDS
        ),
        _WINDOW["x-kubernetes-validations"][1]["rule"]: lambda o: (
            "stopBefore" not in o
            or not _well_formed(o["duration"])
            or not _well_formed(o["stopBefore"])
            or _seconds(o["stopBefore"]) < _seconds(o["duration"])
        ),
    }
)

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def crd_errors(schema: dict[str, Any], value: Any, path: str = "spec") -> list[str]:
    """What the API server's schema validation would say (the subset this CRD uses)."""
    kind = schema.get("type")
    if kind and (
        not isinstance(value, TYPES[kind]) or (isinstance(value, bool) and kind != "boolean")
    ):
        return [f"{path}: expected {kind}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of {schema['enum']}")
    if "minimum" in schema:
        exclusive = schema.get("exclusiveMinimum") is True
        if value < schema["minimum"] or (exclusive and value == schema["minimum"]):
            errors.append(f"{path}: below minimum")
    if "maximum" in schema:
        exclusive = schema.get("exclusiveMaximum") is True
        if value > schema["maximum"] or (exclusive and value == schema["maximum"]):
            errors.append(f"{path}: above maximum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: too long")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: too many items")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: too few items")
    if kind == "array":
        for i, item in enumerate(value):
            errors += crd_errors(schema.get("items", {}), item, f"{path}[{i}]")
    if kind == "object":
        errors += [
            f"{path}.{name}: required" for name in schema.get("required", []) if name not in value
        ]
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += crd_errors(properties[name], item, f"{path}.{name}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{name}: unknown field")
    if errors:
        return errors  # as the API server: no CEL rule runs on an invalid value
    for rule in schema.get("x-kubernetes-validations", []):
        if not CEL[rule["rule"]](value):
            errors.append(f"{path}: {rule['message']}")
    return errors


BASE: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "worker", "image": "worker:1"}]}}
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` set at the dotted ``path`` (``None`` deletes it)."""
    spec = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node: dict[str, Any] = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


REJECTED = {
    "maxRestarts-negative": ("retry.maxRestarts", -1, "maxRestarts"),
    "backoff-max-below-initial": (
        "retry.backoff",
        {"initialSeconds": 10, "maxSeconds": 5},
        "backoff.maxSeconds must be greater than or equal to backoff.initialSeconds",
    ),
    "backoff-max-below-default-initial": (
        "retry.backoff",
        {"maxSeconds": 1},
        "backoff.maxSeconds must be greater than or equal to backoff.initialSeconds",
    ),
    "onPoisonItem-Maybe": ("retry.onPoisonItem", "Maybe", "onPoisonItem"),
    "maxItemAttempts-zero": ("retry.maxItemAttempts", 0, "maxItemAttempts"),
    "backoff-factor-below-1": ("retry.backoff", {"factor": 0.5}, "factor"),
    "exit-code-zero": ("retry.neverRetryExitCodes", [0], "neverRetryExitCodes"),
    "everyItems-zero": ("checkpoint.everyItems", 0, "everyItems"),
    "everySeconds-zero": ("checkpoint.everySeconds", 0, "everySeconds"),
    "minInterval-over-an-hour": ("checkpoint.minIntervalSeconds", 3601, "minIntervalSeconds"),
    "costUsd-zero": ("checkpoint.costUsd", 0, "costUsd"),
    "totalItems-negative": ("totalItems", -5, "totalItems"),
    "ttl-negative": ("ttlSecondsAfterFinished", -1, "ttlSecondsAfterFinished"),
    "runId-too-long": ("runId", "r" * 64, "runId"),
    "runId-not-a-label-value": ("runId", "v2 (retry)", "runId"),
    "runId-ends-with-a-dash": ("runId", "v2-", "runId"),
    "no-containers": ("template.spec.containers", [], "containers"),
    "no-template": ("template", None, "template"),
    "typo-in-a-field": ("checkpoint.everyItem", 5, "everyItem"),
    "window-schedule-four-fields": (
        "window",
        {"schedule": "0 1 * *", "duration": "5h"},
        "schedule",
    ),
    "window-no-duration": ("window", {"schedule": "0 1 * * *"}, "duration"),
    "window-schedule-hour-25": ("window", {"schedule": "0 25 * * *", "duration": "5h"}, "hour"),
    "window-schedule-sunday-7": ("window", {"schedule": "0 1 * * 7", "duration": "5h"}, "week"),
    "window-zone-unknown": (
        "window",
        {"schedule": "@daily", "duration": "5h", "timeZone": "Mars/Olympus_Mons"},
        "timeZone",
    ),
    "window-duration-in-days": ("window", {"schedule": "@daily", "duration": "1d"}, "duration"),
    "window-duration-zero": ("window", {"schedule": "@daily", "duration": "0s"}, "duration"),
    "window-duration-over-a-week": (
        "window",
        {"schedule": "@daily", "duration": "169h"},
        "duration",
    ),
    "window-zone-with-spaces": (
        "window",
        {"schedule": "@daily", "duration": "5h", "timeZone": "Central Europe"},
        "timeZone",
    ),
    "window-stop-before-not-shorter": (
        "window",
        {"schedule": "@daily", "duration": "1h", "stopBefore": "60m"},
        "stopBefore",
    ),
    "window-policy-Allow": (
        "window",
        {"schedule": "@daily", "duration": "5h", "recurrence": {"concurrencyPolicy": "Allow"}},
        "concurrencyPolicy",
    ),
    "window-history-over-10": (
        "window",
        {"schedule": "@daily", "duration": "5h", "recurrence": {"historyLimit": 11}},
        "historyLimit",
    ),
    "outputs-two-kinds": (
        "outputs",
        {"directory": {"path": "/d"}, "s3": {"bucket": "abc"}},
        "set at most one of directory, s3 and status",
    ),
    "outputs-inline-over-16k": ("outputs.status.maxBytes", 16385, "maxBytes"),
    "outputs-s3-endpoint-not-a-url": (
        "outputs.s3",
        {"bucket": "abc", "endpoint": "s3"},
        "endpoint",
    ),
}

ACCEPTED = {
    "base": ("runId", ""),
    "runId-label-value": ("runId", "2026-11-29_retry.2"),
    "backoff-equal": ("retry.backoff", {"initialSeconds": 5, "maxSeconds": 5}),
    "backoff-max-only-above-default": ("retry.backoff", {"maxSeconds": 60}),
    "every-item-policy": ("checkpoint", {"everyItems": 1, "minIntervalSeconds": 0}),
    "cost-policy": ("checkpoint", {"costUsd": 2.0}),
    "fail-on-poison": ("retry.onPoisonItem", "Fail"),
    "exit-codes": ("retry.neverRetryExitCodes", [1, 2, 255]),
    "zero-restarts": ("retry.maxRestarts", 0),
    "window-nightly": ("window", {"schedule": "0 1 * * *", "duration": "5h"}),
    "window-full": (
        "window",
        {
            "schedule": "30 22 * * MON-FRI",
            "duration": "7h30m",
            "timeZone": "America/New_York",
            "stopBefore": "10m",
            "recurrence": {"concurrencyPolicy": "Replace", "historyLimit": 5},
        },
    ),
    "window-macro-a-week": ("window", {"schedule": "@weekly", "duration": "168h"}),
    "outputs-s3": (
        "outputs.s3",
        {"bucket": "results", "endpoint": "http://s3.local:9000", "prefix": "a/b"},
    ),
    "outputs-directory": ("outputs.directory", {"path": "/data/out"}),
}


@pytest.mark.parametrize(("path", "value", "named"), REJECTED.values(), ids=REJECTED.keys())
def test_the_crd_and_the_models_both_reject_with_a_message_naming_the_field(
    spec_schema: dict[str, Any], path: str, value: Any, named: str
) -> None:
    spec = with_change(path, value)
    assert crd_errors(spec_schema, apply_defaults(spec_schema, spec)), "the CRD accepts it"
    with pytest.raises(ValidationError) as caught:
        ResumableBatchSpec.model_validate(spec)
    assert named in str(caught.value)


@pytest.mark.parametrize(("path", "value"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_crd_and_the_models_both_accept(
    spec_schema: dict[str, Any], path: str, value: Any
) -> None:
    spec = with_change(path, value)
    assert crd_errors(spec_schema, apply_defaults(spec_schema, spec)) == []
    ResumableBatchSpec.model_validate(spec)


def test_the_crd_and_the_models_both_refuse_outputs_in_status_with_parallel_workers(
    spec_schema: dict[str, Any],
) -> None:
    spec = with_change("outputs", {"status": {}})
    spec["parallelism"] = 2
    errors = crd_errors(spec_schema, apply_defaults(spec_schema, spec))
    assert any("outputs.status keeps outputs in the one checkpoint" in e for e in errors)
    with pytest.raises(ValidationError, match=r"outputs\.status keeps outputs"):
        ResumableBatchSpec.model_validate(spec)


def test_a_whole_manifest_round_trips_through_the_models() -> None:
    manifest = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "docs", "namespace": "team"},
        "spec": with_change("checkpoint", {"everyItems": 10, "costUsd": 2}),
    }
    batch = ResumableBatch.model_validate(manifest)
    dumped = batch.to_manifest()
    assert dumped["spec"]["checkpoint"]["everyItems"] == 10
    assert ResumableBatch.model_validate(dumped).to_manifest() == dumped
