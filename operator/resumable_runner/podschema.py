"""A pod template checked as the API server checks a pod: unknown fields and wrong types.

The operator creates each worker pod with ``fieldValidation=Strict``, so a cluster
refuses a misspelt template field (``comand:``, ``evn:``, ``restartPolcy:``) or a
number where a string belongs; without this check ``resumable run`` would drop
the field and run without it. :func:`check_template` walks ``spec.template``
through the Pod schema in ``pod-schema.json``, which
:mod:`resumable_runner.podschema_gen` derives from the official Kubernetes
client (``make pod-schema``): shipped as data, so the runner needs only the base
dependencies. Called by :func:`resumable_runner.manifest.load_manifest`.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

#: The generated schema, beside this module.
SCHEMA_FILE = Path(__file__).with_name("pod-schema.json")
#: The scalar types of the file: JSON's, plus the API's own string-or-number kinds.
SCALARS = ("string", "integer", "number", "boolean", "quantity", "int-or-string", "time", "any")
#: At most this many problems are named in one refusal.
MAX_PROBLEMS = 5


@functools.cache
def load_schema() -> dict[str, Any]:
    """The Pod template schema (read once)."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def kubernetes_version() -> str:
    """The Kubernetes release whose Pod schema is checked against ("1.37")."""
    return str(load_schema()["kubernetes"])


def check_template(template: Any, field: str = "spec.template") -> list[str]:
    """Every problem of a pod template, each naming its field (at most MAX_PROBLEMS).

    An unknown field reads "spec.template.spec.containers[0].comand: unknown field
    comand (did you mean command?)"; a wrong type "...: must be an integer, not a
    string". null is taken anywhere, as the API server takes it for "not set".
    """
    schema = load_schema()
    problems: list[str] = []
    _check(schema["types"], schema["root"], template, field, problems)
    return problems[:MAX_PROBLEMS]


def _check(types: dict[str, Any], expr: str, value: Any, field: str, problems: list[str]) -> None:
    if value is None or len(problems) >= MAX_PROBLEMS:
        return
    if expr.startswith("["):
        if not isinstance(value, list):
            problems.append(f"{field}: must be a list, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            _check(types, expr[1:-1], item, f"{field}[{i}]", problems)
        return
    if expr.startswith("{"):
        if not isinstance(value, dict):
            problems.append(f"{field}: must be a map, not {_kind(value)}")
            return
        for key, item in value.items():
            _check(types, expr[1:-1], item, f"{field}.{key}", problems)
        return
    if expr in SCALARS:
        wrong = _scalar_problem(expr, value)
        if wrong:
            problems.append(f"{field}: {wrong}")
        return
    fields: dict[str, str] = types[expr]
    if not isinstance(value, dict):
        problems.append(f"{field}: must be an object, not {_kind(value)}")
        return
    for key, item in value.items():
        inner = f"{field}.{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{inner}: unknown field {key}{hint}")
            continue
        _check(types, fields[key], item, inner, problems)


def _scalar_problem(expr: str, value: Any) -> str:
    """Why value is not of the scalar type expr ("" when it is)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {
        "string": isinstance(value, str),
        "time": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": number,
        "boolean": isinstance(value, bool),
        "quantity": isinstance(value, str) or number,
        "int-or-string": isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool)),
        "any": True,
    }[expr]
    if fits:
        return ""
    wanted = {
        "string": "a string",
        "time": "a time (a string)",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "quantity": 'a quantity ("500m", "1Gi" or a number)',
        "int-or-string": "an integer or a string",
    }[expr]
    return f"must be {wanted}, not {_kind(value)}"


def _kind(value: Any) -> str:
    """How a YAML value is named in a message."""
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 20 else "a string"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__
