"""Azure Resource Manager's per-subscription request throttling: token buckets for reads, writes and
deletes, refilled on the emulator's shared clock, with ARM's 429 and remaining-count headers, and
per-minute request figures for load benchmarks. Off unless the scenario (or the admin API) turns it on.

What ARM does (sources, public):
- MicrosoftDocs/azure-docs articles/azure-resource-manager/management/request-limits-and-throttling.md
  (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling),
  "Regional throttling and token bucket algorithm": since 2024 ARM throttles per region (not per ARM
  instance) with token buckets; subscription reads: bucket 250, refill 25/s; deletes 200, 10/s;
  writes 200, 10/s; applied per subscription, per service principal and per operation type (plus a
  global subscription limit of 15 times that across all principals). Its "Error code" section: 429
  with a Retry-After in seconds; "Remaining requests": ``x-ms-ratelimit-remaining-subscription-reads``
  on read operations, ``-writes`` on write operations.
- ``x-ms-ratelimit-remaining-subscription-deletes`` on DELETE responses: recorded ARM responses in the
  Azure SDKs' test recordings.
- Code and message of a token-bucket 429: velero-io/velero#9171 quotes ``SubscriptionRequestsThrottled``,
  "Number of 'read' requests for subscription '...' actor '...' exceeded. Please try again after '1'
  seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling ...".

The emulator is one region and one principal, so a bucket is per subscription and request class
(GET/HEAD read, DELETE delete, any other method write; ARM counts POST actions as writes), and the
message leaves out the actor. Buckets refill in virtual seconds of the shared clock: the whole
simulation (the app's polling intervals and timers, job durations) runs in virtual time, so on a
clock scaled x20 the app sends 20 times more calls per real second, and limits per virtual second
keep the ratio of calls to budget what it would be in Azure. Retry-After is in virtual seconds too.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from emulators.recoveryservices import errors
from localclock.clock import iso as iso_datetime

READS, WRITES, DELETES = "reads", "writes", "deletes"
CLASSES = (READS, WRITES, DELETES)
_VERB = {READS: "read", WRITES: "write", DELETES: "delete"}
_METHOD_CLASS = {"GET": READS, "HEAD": READS, "DELETE": DELETES}
HEADER = "x-ms-ratelimit-remaining-subscription-"
RING_MINUTES = 240
# Virtual time is float POSIX seconds (~2e-7 s resolution today): an advance of exactly 1 s may read
# as 0.9999998 s, which must still refill a whole token at 1 token/s.
_EPSILON = 1e-6
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


class ThrottlingConfigError(ValueError):
    """The throttling settings are malformed; the message names the field."""


@dataclass(frozen=True)
class Limit:
    bucket: int
    refill_per_second: float

    def to_json(self) -> dict[str, float]:
        return {"bucket": self.bucket, "refillPerSecond": self.refill_per_second}


ARM_LIMITS = {READS: Limit(250, 25.0), WRITES: Limit(200, 10.0), DELETES: Limit(200, 10.0)}


def _fields(raw: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ThrottlingConfigError(f"{where} must be a JSON object, got {raw!r}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ThrottlingConfigError(f"{where}: unknown field {unknown[0]!r} (expected {', '.join(allowed)})")
    return raw


def _limit(raw: Any, current: Limit, where: str) -> Limit:
    values = _fields(raw, ("bucket", "refillPerSecond"), where)
    bucket = values.get("bucket", current.bucket)
    if isinstance(bucket, bool) or not isinstance(bucket, int) or bucket < 1:
        raise ThrottlingConfigError(f"{where}.bucket must be an integer >= 1, got {bucket!r}")
    refill = values.get("refillPerSecond", current.refill_per_second)
    if isinstance(refill, bool) or not isinstance(refill, int | float) or not 0 < refill < math.inf:
        raise ThrottlingConfigError(f"{where}.refillPerSecond must be a number > 0, got {refill!r}")
    return Limit(bucket, float(refill))


@dataclass(frozen=True)
class ThrottlingConfig:
    """``{"enabled": bool, "reads"|"writes"|"deletes": {"bucket": int, "refillPerSecond": number}}``."""

    enabled: bool = False
    limits: Mapping[str, Limit] = field(default_factory=lambda: dict(ARM_LIMITS))

    def merged(self, raw: Any, where: str = "throttling") -> ThrottlingConfig:
        """This config with the fields given in ``raw`` replacing its own."""
        values = _fields(raw, ("enabled", *CLASSES), where)
        enabled = values.get("enabled", self.enabled)
        if not isinstance(enabled, bool):
            raise ThrottlingConfigError(f"{where}.enabled must be true or false, got {enabled!r}")
        limits = dict(self.limits)
        for c in CLASSES:
            if c in values:
                limits[c] = _limit(values[c], limits[c], f"{where}.{c}")
        return ThrottlingConfig(enabled, limits)

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **{c: self.limits[c].to_json() for c in CLASSES}}


def parse_config(raw: Any) -> ThrottlingConfig:
    """The scenario's ``throttling`` object (absent: off, with ARM's limits)."""
    return ThrottlingConfig() if raw is None else ThrottlingConfig().merged(raw)


@dataclass
class _Bucket:
    tokens: float
    at: float

    def level(self, limit: Limit, now: float) -> float:
        return min(float(limit.bucket), self.tokens + max(0.0, now - self.at) * limit.refill_per_second)

    def refill(self, limit: Limit, now: float) -> None:
        self.tokens, self.at = self.level(limit, now), max(self.at, now)


def iso(ts: float) -> str:
    return iso_datetime(datetime.fromtimestamp(ts, tz=timezone.utc))


def _by_class(counts: Counter[str]) -> dict[str, int]:
    return {**{c: counts[c] for c in CLASSES}, "total": sum(counts[c] for c in CLASSES)}


@dataclass
class _Subscription:
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    # (virtual minute, counts by class plus "throttled"), oldest first; minutes without requests are absent.
    minutes: deque[tuple[int, Counter[str]]] = field(default_factory=lambda: deque(maxlen=RING_MINUTES))

    def count(self, cls: str, now: float, throttled: bool) -> None:
        minute = int(now // 60)
        if not self.minutes or self.minutes[-1][0] < minute:
            self.minutes.append((minute, Counter()))
        counts = self.minutes[-1][1]
        counts[cls] += 1
        self.requests[cls] += 1
        if throttled:
            counts["throttled"] += 1
            self.throttled[cls] += 1
        for key, value in _by_class(counts).items():
            self.peak[key] = max(self.peak[key], value)

    def to_json(self, config: ThrottlingConfig, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "requests": _by_class(self.requests),
            "throttled": _by_class(self.throttled),
            "peakPerMinute": {key: self.peak[key] for key in (*CLASSES, "total")},  # total: the busiest minute
            "minutes": [
                {"minute": iso(minute * 60.0), **{c: counts[c] for c in CLASSES}, "throttled": counts["throttled"]}
                for minute, counts in self.minutes
            ],
        }
        if config.enabled:
            body["remaining"] = {c: self.remaining(c, config.limits[c], now) for c in CLASSES}
        return body

    def remaining(self, cls: str, limit: Limit, now: float) -> int:
        bucket = self.buckets.get(cls)
        return math.floor((bucket.level(limit, now) if bucket else limit.bucket) + _EPSILON)


class Throttler:
    """Admits ARM requests: counts every one per subscription and, when enabled, takes a token from its
    class's bucket or refuses it with ARM's 429 before anything else happens."""

    def __init__(self, config: ThrottlingConfig):
        self.config = config
        self.subscriptions: dict[str, _Subscription] = {}

    def admit(self, method: str, path: str, now: float) -> dict[str, str]:
        """The remaining-count header for the response; raises ``ArmError`` 429 when the bucket is empty.
        Paths outside ``/subscriptions/{id}`` (tenant level, not modelled) pass uncounted."""
        found = _SUBSCRIPTION.match(path)
        if found is None:
            return {}
        sub_id = found.group(1).lower()
        sub = self.subscriptions.setdefault(sub_id, _Subscription())
        cls = _METHOD_CLASS.get(method.upper(), WRITES)
        if not self.config.enabled:
            sub.count(cls, now, throttled=False)
            return {}
        limit = self.config.limits[cls]
        bucket = sub.buckets.setdefault(cls, _Bucket(float(limit.bucket), now))
        bucket.refill(limit, now)
        if bucket.tokens + _EPSILON >= 1.0:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            sub.count(cls, now, throttled=False)
            return {HEADER + cls: str(sub.remaining(cls, limit, now))}
        sub.count(cls, now, throttled=True)
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / limit.refill_per_second - _EPSILON))
        raise errors.ArmError(
            429,
            errors.THROTTLED,
            f"Number of '{_VERB[cls]}' requests for subscription '{found.group(1)}' exceeded. Please try again "
            f"after '{retry_after}' seconds after additional tokens are available. "
            "Refer to https://aka.ms/arm-throttling for additional information.",
            {"Retry-After": str(retry_after), HEADER + cls: "0"},
        )

    def configure(self, raw: Any, now: float) -> ThrottlingConfig:
        """Apply the fields given (the scenario's shape) at run time. Buckets keep their tokens up to a
        smaller size; turning throttling off drops them, so turning it on again starts them full."""
        new = self.config.merged(raw)
        for sub in self.subscriptions.values():
            if not new.enabled:
                sub.buckets.clear()
            for cls, bucket in sub.buckets.items():
                bucket.refill(self.config.limits[cls], now)
                bucket.tokens = min(bucket.tokens, float(new.limits[cls].bucket))
        self.config = new
        return new

    def clear(self) -> None:
        """Forget the figures and refill every bucket (the limits stay)."""
        self.subscriptions.clear()

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            **self.config.to_json(),
            "now": iso(now),
            "subscriptions": {sub_id: sub.to_json(self.config, now) for sub_id, sub in self.subscriptions.items()},
        }
