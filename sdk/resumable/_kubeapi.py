"""Deprecated name of :mod:`resumable.kubeapi`, kept while importers move over."""

from resumable.kubeapi import *  # noqa: F403
from resumable.kubeapi import (
    JSON_PATCH,
    MERGE_PATCH,
    ApiError,
    KubeApi,
    batch_path,
    call_with_retries,
    load_api_client,
)
from resumable.kubeapi import server_message as _server_message

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "ApiError",
    "KubeApi",
    "_server_message",
    "batch_path",
    "call_with_retries",
    "load_api_client",
]
