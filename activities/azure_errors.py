"""Turning SDK exceptions into classified failures (see backup_chain.errors)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from backup_chain.errors import AzureFailure, failure


class TransientAzureError(Exception):
    """Raised by activities for failures worth retrying (throttling, 5xx, network); the
    orchestrators' retry options retry them on durable timers."""


def from_exception(err: BaseException) -> AzureFailure:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(err, HttpResponseError):
        code = None
        message = str(err.message or err)
        error = getattr(err, "error", None)
        if error is not None:
            code = getattr(error, "code", None)
            message = getattr(error, "message", None) or message
        if code is None and err.response is not None:
            with contextlib.suppress(ValueError, AttributeError):
                body: Any = json.loads(err.response.text())
                code = (body.get("error") or {}).get("code")
                message = (body.get("error") or {}).get("message") or message
        return failure(err.status_code, code, message)
    if isinstance(err, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
        return failure(None, "NetworkError", str(err))
    raise err


def raise_if_transient(result: AzureFailure) -> AzureFailure:
    if result.kind == "transient":
        raise TransientAzureError(f"{result.code}: {result.message}")
    return result
