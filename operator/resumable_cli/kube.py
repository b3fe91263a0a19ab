"""The cluster commands' access to the API server: the client, the namespace, the batch.

Used by :mod:`resumable_cli.get`, :mod:`~resumable_cli.describe`,
:mod:`~resumable_cli.logs`, :mod:`~resumable_cli.control` and
:mod:`~resumable_cli.status`. The kubernetes client is imported only when a command
needs it, so that the local commands run without it and a missing client is one
line that says what to install.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from resumable_cli.errors import CliError


def connect(args: argparse.Namespace) -> Any:
    """The API client (a ``resumable.kubeapi.KubeApi``) for --kubeconfig and --context.

    Without the kubernetes client, or without a kubeconfig, a one-line CliError says
    what is missing (and where a local batch of that name keeps its state, if any).
    """
    try:
        from resumable.kubeapi import KubeApi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CliError(
            "cluster commands need the kubernetes client: pip install 'resumable-batch[operator]'"
        ) from exc
    missing = _missing_kubeconfig(args.kubeconfig)
    try:
        if missing:
            raise CliError(missing)
        return KubeApi.from_environment(kubeconfig=args.kubeconfig, context=args.context)
    except Exception as exc:
        local = Path(".resumable") / str(getattr(args, "name", None) or "")
        name = getattr(args, "name", None)
        hint = (
            f" (a local batch of that name keeps its state in {local}/status.json and its "
            f"workers' output in {local}/logs/: `resumable status {name} --local` reads it)"
            if name and (local / "status.json").is_file()
            else ""
        )
        why = " ".join(str(exc).split())  # one line: a YAML error spans several
        raise CliError(f"cannot load kubeconfig: {why}{hint}") from exc


def _missing_kubeconfig(option: str | None) -> str:
    """Which kubeconfig file does not exist, when that is why none can be loaded; else "".

    The kubernetes client says only "Invalid kube-config file. No configuration
    found." for a file that is not there.
    """
    if option:
        return "" if Path(option).expanduser().exists() else f"{option} does not exist"
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p]
    if paths:
        if any(Path(p).expanduser().exists() for p in paths):
            return ""
        if len(paths) == 1:
            return f"{paths[0]} (from KUBECONFIG) does not exist"
        return f"none of the files in KUBECONFIG exists: {env}"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ""  # in a pod: the service account's credentials
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        return ""
    return f"{default} does not exist (give --kubeconfig, or set KUBECONFIG)"


def namespace(args: argparse.Namespace) -> str:
    """The namespace: -n, else the kubeconfig context's, else "default"."""
    if args.namespace:
        return str(args.namespace)
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig
        )
        if args.context:
            contexts, _ = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=args.kubeconfig
            )
            active = next((c for c in contexts if c["name"] == args.context), active)
        return str(active.get("context", {}).get("namespace") or "default")
    except Exception:
        return "default"


class BatchNotFoundError(CliError):
    """The batch does not exist (404)."""


def get_batch(api: Any, ns: str, name: str) -> dict[str, Any]:
    """The batch object as the API server returns it; BatchNotFoundError when absent."""
    from resumable.kubeapi import ApiError, NotFoundError, batch_path

    try:
        result: dict[str, Any] = api.request("GET", batch_path(ns, name))
    except NotFoundError:
        raise BatchNotFoundError(f'resumablebatch "{name}" not found in namespace "{ns}"') from None
    except ApiError as exc:
        raise CliError(f"cannot read resumablebatch {ns}/{name}: {exc.message}") from None
    return result


def patch_spec(api: Any, ns: str, name: str, spec: dict[str, Any]) -> None:
    """Merge-patch the batch's spec (after a read, so a missing batch says so)."""
    from resumable.kubeapi import MERGE_PATCH, ApiError, batch_path

    get_batch(api, ns, name)
    try:
        api.request("PATCH", batch_path(ns, name), body={"spec": spec}, content_type=MERGE_PATCH)
    except ApiError as exc:
        raise CliError(f"cannot update resumablebatch {ns}/{name}: {exc.message}") from None
