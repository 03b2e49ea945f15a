"""Classifying Azure failures so orchestrators decide on data, not on exception text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

Kind = Literal["transient", "conflict", "stopped", "final"]

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_CODES = frozenset(
    {
        "CloudInternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "SubscriptionRequestsThrottled",
        "TooManyRequests",
    }
)
# Another backup of the item is running (e.g. the scheduled one): adopt it or wait it out.
CONFLICT_CODES = frozenset({"UserErrorBackupOperationInProgress", "BMSUserErrorObjectLocked"})
# Protection is stopped: in weekend-window mode the chain resumes it first.
STOPPED_CODES = frozenset({"UserErrorBackupNotAllowedProtectionStopped", "BMSUserErrorProtectionStopped"})


class _ErrorExtras(TypedDict, total=False):
    status: int | None  # the HTTP status Azure answered (None: no answer); only on Azure's answers
    number: int | None  # a failed job's errorCode number, with its ``title``
    title: str | None


class ErrorDict(_ErrorExtras):
    """A failure as orchestrators and activities pass it on (``{"ok": False, "error": ...}``)."""

    kind: Kind
    code: str
    message: str
    recommendations: list[str]


def error_dict(
    code: str,
    message: str,
    *,
    kind: Kind = "final",
    recommendations: Sequence[str] = (),
    extras: _ErrorExtras | None = None,
) -> ErrorDict:
    """The one builder of error dicts, for Azure's answers and the app's own verdicts alike."""
    error: ErrorDict = {"kind": kind, "code": code, "message": message, "recommendations": list(recommendations)}
    extras = extras or {}
    if "status" in extras:
        error["status"] = extras["status"]
    if "number" in extras:
        error["number"] = extras["number"]
    if "title" in extras:
        error["title"] = extras["title"]
    return error


@dataclass(frozen=True)
class AzureFailure:
    kind: Kind
    code: str
    message: str
    status: int | None = None
    recommendations: list[str] = field(default_factory=list)

    def to_dict(self) -> ErrorDict:
        return error_dict(
            self.code,
            self.message,
            kind=self.kind,
            recommendations=self.recommendations,
            extras={"status": self.status},
        )


def classify(status: int | None, code: str | None) -> Kind:
    if code in CONFLICT_CODES:
        return "conflict"
    if code in STOPPED_CODES:
        return "stopped"
    if code in TRANSIENT_CODES or status in TRANSIENT_STATUS or status is None:
        return "transient"
    return "final"


def failure(
    status: int | None, code: str | None, message: str, recommendations: list[str] | None = None
) -> AzureFailure:
    return AzureFailure(classify(status, code), code or f"HTTP{status}", message, status, list(recommendations or []))


_EXHAUSTED = re.compile(r"TransientAzureError: ([A-Za-z0-9_.]+): ([^\n\"]*)")


def retries_exhausted(text: str) -> ErrorDict:
    """The failure of an activity that still failed after its durable retries, from the task's
    failure text (``TransientAzureError: <code>: <message>`` as the activity raised it)."""
    match = _EXHAUSTED.search(text)
    code, message = (match.group(1), match.group(2).strip()) if match else ("RetriesExhausted", text.strip()[:300])
    recommendation = "Azure kept failing beyond the retries; check Azure status and retry the run."
    return AzureFailure(
        "transient", code, f"still failing after the retries: {message}"[:500], None, [recommendation]
    ).to_dict()
