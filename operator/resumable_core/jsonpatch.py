"""A small RFC 6902 JSON patch applier (add, remove, replace, test) for the local store.

The local runner applies the same fenced status patches the operator sends to the
API server, so a failed ``test`` refuses the write in both places alike.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchTestFailedError(Exception):
    """A ``test`` op did not match: the document changed underneath."""


def _split(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def apply_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a patched copy of doc; raise PatchTestFailed or KeyError on failure."""
    result = copy.deepcopy(doc)
    for op in ops:
        parts = _split(op["path"])
        parent = _parent(result, parts)
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last, KeyError)
            if current != op["value"]:
                raise PatchTestFailedError(f"test at {op['path']}: {current!r} != {op['value']!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and not isinstance(parent, list) and last not in parent:
                raise KeyError(op["path"])
            if isinstance(parent, list) and kind == "replace":
                parent[int(last)] = copy.deepcopy(op["value"])  # IndexError if it is not there
            elif isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise ValueError(f"unsupported op {kind!r}")
    return result
