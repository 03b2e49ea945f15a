"""Event Grid data-plane error responses.

Shape, as recorded from the real service (azure-sdk-for-js eventgrid test recordings):
``{"error": {"code": "NotFound", "message": "... Report '<id>:<time> (UTC)' to our forums for
assistance or raise a support ticket.", "details": [{"code": "ResourceNotFound", "message": ...}]}}``
with an ``x-ms-request-id`` header.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus

from aiohttp import web

# Detail codes used by Event Grid basic (custom topic) publish errors.
INPUT_JSON_INVALID = "InputJsonInvalid"
INVALID_CONTENT_TYPE = "InvalidContentType"
RESOURCE_NOT_FOUND = "ResourceNotFound"
UNAUTHORIZED = "Unauthorized"
FORBIDDEN = "Forbidden"
PAYLOAD_TOO_LARGE = "PayloadTooLarge"


class PublishError(Exception):
    """A publish request Azure would reject; becomes an Event Grid error response."""

    def __init__(self, status: int, message: str, detail_code: str, *, report: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail_code = detail_code
        self.report = report


def status_code_name(status: int) -> str:
    """``413`` -> ``RequestEntityTooLarge``: the .NET HttpStatusCode name Azure uses as error code."""
    names = {413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}
    if status in names:
        return names[status]
    return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")


def report_suffix(request_id: str, now: datetime) -> str:
    stamp = f"{now.month}/{now.day}/{now.year} {now.strftime('%I:%M:%S %p').lstrip('0')}"
    return f" Report '{request_id}:1:{stamp} (UTC)' to our forums for assistance or raise a support ticket."


def error_response(err: PublishError, now: datetime, request_id: str | None = None) -> web.Response:
    request_id = request_id or str(uuid.uuid4())
    message = err.message + (report_suffix(request_id, now) if err.report else "")
    body = {
        "error": {
            "code": status_code_name(err.status),
            "message": message,
            "details": [{"code": err.detail_code, "message": message}],
        }
    }
    return web.json_response(body, status=err.status, headers={"x-ms-request-id": request_id})
