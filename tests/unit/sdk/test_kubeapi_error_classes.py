"""resumable.kubeapi.api_error: one class per status, all of them ApiError.

The statuses the real test server cannot give on demand (429, 5xx) are mapped
here; tests/integration/test_kubeapi_errors.py checks the ones it gives.
"""

from __future__ import annotations

import pytest

from resumable import kubeapi


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (0, kubeapi.UnreachableError, True),
        (400, kubeapi.BadRequestError, False),
        (401, kubeapi.UnauthorizedError, False),
        (403, kubeapi.ForbiddenError, False),
        (404, kubeapi.NotFoundError, False),
        (409, kubeapi.ConflictError, False),
        (422, kubeapi.InvalidError, False),
        (429, kubeapi.TooManyRequestsError, True),
        (500, kubeapi.ServerError, True),
        (503, kubeapi.ServerError, True),
        (418, kubeapi.ApiError, False),
    ],
)
def test_each_status_has_its_class_and_keeps_status_message_and_retry_after(
    status: int, cls: type[kubeapi.ApiError], retryable: bool
) -> None:
    exc = kubeapi.api_error(status, "why", retry_after=3.0)
    assert type(exc) is cls
    assert isinstance(exc, kubeapi.ApiError)
    assert (exc.status, exc.message, exc.retry_after) == (status, "why", 3.0)
    assert exc.retryable is retryable
