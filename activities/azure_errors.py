"""Turning SDK exceptions into classified failures (see backup_chain.errors)."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
from typing import Any
from urllib.parse import urlsplit

from backup_chain.errors import AzureFailure, failure

log = logging.getLogger("backup_chain")
TLS_NOT_TRUSTED = "TlsCertificateNotTrusted"
_reported_untrusted: set[str] = set()  # endpoints already logged at ERROR by this worker process


class TransientAzureError(Exception):
    """Raised by activities for failures worth retrying (throttling, 5xx, network); the
    orchestrators' retry options retry them on durable timers."""


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and every exception it wraps: azure-core keeps the transport's error as
    ``inner_exception`` (RequestsTransport.send turns requests' SSLError, a ConnectionError, into
    ServiceRequestError(err, error=err)), requests and urllib3 keep theirs in ``args`` and ``reason``."""
    found: list[BaseException] = []
    pending: list[Any] = [err]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        pending += [item.__cause__, item.__context__, getattr(item, "inner_exception", None)]
        pending += [getattr(item, "reason", None), *item.args]
    return found


def _endpoint(chain: list[BaseException]) -> str:
    """scheme://host:port of the request that failed (requests keeps it on its exception)."""
    for item in chain:
        url = getattr(getattr(item, "request", None), "url", None)
        if url:
            parts = urlsplit(str(url))
            return f"{parts.scheme}://{parts.netloc}"
    return "the endpoint"


def untrusted_certificate(err: BaseException) -> AzureFailure | None:
    """A TLS handshake whose certificate this process does not trust, as a final failure naming
    the endpoint and the fix; None for any other error. Final, not transient: retrying the same
    handshake against the same trust store fails the same way (CPython raises
    ssl.SSLCertVerificationError when OpenSSL's verify step fails); only a changed CA bundle or
    certificate heals it."""
    chain = _causes(err)
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is None:
        return None
    endpoint = _endpoint(chain)
    reason = verify.verify_message or verify.reason or "certificate verify failed"
    message = (
        f"TLS certificate of {endpoint} not trusted ({reason}): set REQUESTS_CA_BUNDLE to a CA bundle "
        "that holds its issuer (on the local stack: the ca-bundle.pem ./dev serve prints), then restart the app"
    )
    if endpoint not in _reported_untrusted:
        _reported_untrusted.add(endpoint)
        log.error("%s: %s", TLS_NOT_TRUSTED, message)
    return AzureFailure(
        "final",
        TLS_NOT_TRUSTED,
        message,
        None,
        [f"Check which CA bundle the app uses (REQUESTS_CA_BUNDLE) and that it holds the issuer of {endpoint}."],
    )


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
        return untrusted_certificate(err) or failure(None, "NetworkError", str(err))
    raise err


def raise_if_transient(result: AzureFailure) -> AzureFailure:
    if result.kind == "transient":
        raise TransientAzureError(f"{result.code}: {result.message}")
    return result
