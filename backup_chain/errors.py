"""Classifying Azure failures so orchestrators decide on data, not on exception text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class AzureFailure:
    kind: Kind
    code: str
    message: str
    status: int | None = None
    recommendations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
