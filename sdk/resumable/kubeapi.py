"""A small JSON-in, JSON-out layer over the official Kubernetes client.

The official client loads kubeconfig or in-cluster credentials and owns TLS and
the connection pool; this module sends plain dicts through it (JSON patches
included) and turns every failure into an :class:`ApiError` subclass named for
what happened (:class:`NotFoundError`, :class:`ConflictError`, :class:`InvalidError`,
:class:`ForbiddenError`, :class:`TooManyRequestsError`, :class:`ServerError`,
:class:`UnreachableError`) with the status code, the server's message and any
Retry-After. :func:`call_with_retries` retries what is worth retrying (429, 5xx,
timeouts, refused connections) with backoff and jitter.

Public: the SDK's Kubernetes store, the operator and the CLI's cluster commands
all talk to the API server through it. Imported only when a cluster is
involved, so ``import resumable`` stays light.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

T = TypeVar("T")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A failed API call: HTTP status (0 when no response), message, Retry-After.

    Raised as the subclass that names the status (see :func:`api_error`); catch
    the subclass for the case you handle, ``ApiError`` for any failure.
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status or 'no response'}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """True for 429, 5xx and transport failures."""
        return self.status in (0, 429) or self.status >= 500


class UnreachableError(ApiError):
    """No answer: refused, reset or timed out, or the deadline passed before sending (0)."""


class InvalidError(ApiError):
    """The server refused the request as invalid (422), e.g. a field value or a failed
    ``test`` op of a JSON patch."""


class BadRequestError(ApiError):
    """The request is malformed (400), e.g. a label selector with an invalid value.

    Not an :class:`InvalidError`: a failed ``test`` op is a 422, and code that
    reads a 422 as "changed meanwhile, read again" must not loop on a 400."""


class UnauthorizedError(ApiError):
    """The credentials were not accepted (401)."""


class ForbiddenError(ApiError):
    """Authenticated, but not allowed (403): RBAC, an admission policy, a quota."""


class NotFoundError(ApiError):
    """The object does not exist (404)."""


class ConflictError(ApiError):
    """The object exists already, or changed since it was read (409)."""


class TooManyRequestsError(ApiError):
    """Throttled (429): try again after ``retry_after`` when given."""


class ServerError(ApiError):
    """The server failed (5xx): worth retrying."""


_BY_STATUS: dict[int, type[ApiError]] = {
    0: UnreachableError,
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidError,
    429: TooManyRequestsError,
}


def api_error(status: int, message: str, *, retry_after: float | None = None) -> ApiError:
    """The :class:`ApiError` subclass for an HTTP status (plain ApiError for others)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, message, retry_after=retry_after)


def load_api_client(*, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient for the cluster: kubeconfig (KUBECONFIG or ~/.kube) or in-cluster."""
    configuration = k8s_client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration
        )
    else:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    configuration.retries = 0
    return k8s_client.ApiClient(configuration)


class KubeApi:
    """Raw REST calls with dict bodies, through the official client's transport."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    @classmethod
    def from_environment(
        cls, *, kubeconfig: str | None = None, context: str | None = None
    ) -> KubeApi:
        """Connect with the current kubeconfig or the pod's service account."""
        return cls(load_api_client(kubeconfig=kubeconfig, context=context))

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        until: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON response or raise ApiError.

        ``until`` is a ``time.monotonic()`` deadline: the request's timeout is cut
        to the time left before it, and with no time left nothing is sent (a
        retryable ApiError with status 0, as for a timeout).
        """
        timeout = timeout or self.timeout
        if until is not None:
            left = until - time.monotonic()
            if left <= 0:
                raise UnreachableError(0, "the deadline passed before the request was sent")
            timeout = min(timeout, left)
        params = [
            (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()
        ]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method_, url, headers_, body_, post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(
                method_,
                url,
                header_params=headers_,
                body=body_,
                post_params=post,
                _request_timeout=timeout,
            )
            data = response.read()
        except k8s_client.ApiException as exc:
            raise api_error(int(exc.status or 0), str(exc.reason)) from exc
        except Exception as exc:  # urllib3 transport errors: refused, reset, timed out
            raise UnreachableError(0, f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            raise api_error(
                response.status,
                server_message(data) or str(response.reason),
                retry_after=_retry_after(response.getheader("Retry-After")),
            )
        return json.loads(data) if data else None

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        read_timeout: float | None = None,
        chunk_size: int = 64 * 1024,
    ) -> Iterator[bytes]:
        """GET a body that is not JSON, or not done yet (a pod's log, followed): its bytes
        in chunks as the server sends them.

        The request is sent now, and a refusal raises its ApiError subclass here; a
        connection that breaks later raises UnreachableError from the iterator.
        ``read_timeout`` None waits for data as long as it takes (a quiet worker is
        not a dead connection); the connection itself must open within the timeout.
        """
        params = [
            (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()
        ]
        method, url, headers = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=params,
            header_params={"Accept": "*/*"},
            auth_settings=["BearerToken"],
        )[:3]
        try:
            response = self.api_client.call_api(
                method, url, header_params=headers, _request_timeout=(self.timeout, read_timeout)
            )
        except k8s_client.ApiException as exc:
            raise api_error(int(exc.status or 0), str(exc.reason)) from exc
        except Exception as exc:  # urllib3 transport errors: refused, reset, timed out
            raise UnreachableError(0, f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 400:  # the client does not raise for these: the body says why
            raise api_error(
                response.status,
                server_message(response.read()) or str(response.reason),
                retry_after=_retry_after(response.getheader("Retry-After")),
            )
        return _chunks(response.response, chunk_size)


def _chunks(response: Any, size: int) -> Iterator[bytes]:
    """A streamed body's chunks; a broken connection mid-stream raises UnreachableError."""
    chunks = response.stream(size, decode_content=True)
    while True:
        try:
            chunk = next(chunks, b"")
        except Exception as exc:  # urllib3: the connection broke mid-stream
            raise UnreachableError(0, f"{type(exc).__name__}: {exc}") from None
        if not chunk:
            return
        yield chunk


def server_message(data: bytes | None) -> str:
    """The message of a Kubernetes Status body (or the body itself, cut to 500 chars)."""
    if not data:
        return ""
    try:
        payload = json.loads(data)
    except ValueError:
        return data.decode(errors="replace")[:500]
    if isinstance(payload, dict):
        return str(payload.get("message") or payload)
    return str(payload)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def call_with_retries(
    call: Callable[[], T],
    *,
    deadline: float,
    base: float = 0.2,
    cap: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    last_try: float = 0.0,
) -> T:
    """Call until it succeeds, retrying retryable ApiErrors with full-jitter backoff.

    Honours Retry-After. A backoff that would end later than ``last_try``
    seconds before ``deadline`` is cut short, and the try after it is the last:
    a server back by then is always reached, and that try has ``last_try``
    seconds to get its answer (pass the same deadline to the request, see
    :meth:`KubeApi.request`, so no try outlives it). Gives up (re-raising the
    last error) after that try, once the deadline has passed, or at once when
    Retry-After asks for more time than is left. Non-retryable errors are raised
    at once.
    """
    start = clock()
    attempt = 0
    last = False
    while True:
        try:
            return call()
        except ApiError as exc:
            if not exc.retryable or last:
                raise
            remaining = deadline - (clock() - start)
            if remaining <= 0 or (exc.retry_after or 0.0) > remaining:
                raise
            attempt += 1
            delay = random.uniform(0, min(cap, base * 2**attempt))
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            cut = max(remaining - last_try, exc.retry_after or 0.0, 0.0)
            if delay >= cut:
                delay, last = cut, True
            sleep(delay)


def batch_path(namespace: str, name: str = "", *, status: bool = False) -> str:
    """The REST path of a ResumableBatch (or the collection when name is empty)."""
    from resumable.v1alpha1 import GROUP, PLURAL, VERSION

    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    if name:
        path += f"/{name}"
        if status:
            path += "/status"
    return path
