"""Shared pieces of the bad-input suite: hostile strings and JSON, hypothesis settings, and the
"nothing was started" check against the real stack (devhost's Durable instance list, the Recovery
Services emulator's request log, the downstream topic) over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from demo.stack import Stack

# Deterministic and database-free: the same examples on every CI run, nothing written to disk.
# Examples against the stack are a few HTTP round trips each; the budget keeps the directory
# under about a minute on a 2-core machine.
_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
}
PURE = settings(max_examples=150, **_COMMON)
HTTP = settings(max_examples=50, **_COMMON)
HTTP_FEW = settings(max_examples=15, **_COMMON)

# Strings that have broken parsers, routers, loggers and databases elsewhere.
HOSTILE_STRINGS = [
    "",
    " ",
    "'; DROP TABLE instances; --",
    '" OR ""="',
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2f",
    "%00",
    "\x00",
    "a\x00b",
    "\r\nX-Injected: 1",
    "\n",
    "\t",
    "\x1b[31mred\x1b[0m",
    "\u202egnp.exe",
    "\ufeff",
    "\ud800",
    "\udfff",
    "a\udcffb",
    "\U0001f4a5",
    "\U0001d54f" * 8,
    "\u0130\u0131\u017f\u212a",  # letters that case-fold onto ASCII (İ ı ſ, the Kelvin sign)
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "$(id)",
    "`id`",
    "null",
    "true",
    "NaN",
    "-1",
    "1e309",
    "chain:nightly:x",
    "/",
    "\\",
    "?",
    "#",
    "%",
    "*",
    "A" * 5000,
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "So", "Mn"]), max_size=20),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = [
    None,
    "application/json",
    "application/problem+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/json; charset=utf-16",
    "application/octet-stream",
    "*/*",
]


def dumps(value: Any) -> bytes:
    """JSON bytes as a client sends them; lone surrogates travel as ``\\udXXX`` escapes."""
    return json.dumps(value).encode()


def strict_json(text: str | bytes) -> Any:
    """Parse JSON as RFC 8259 defines it (no NaN or Infinity), as JavaScript and .NET clients do."""

    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=reject)


class Quiet(Stack):
    """The module's stack, printed as ``<stack>`` when hypothesis reports a failing example (it
    prints every argument, and a Stack's fields run to a screenful)."""

    def __init__(self, stack: Stack) -> None:
        self.__dict__.update(stack.__dict__)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("<stack>")

    def __repr__(self) -> str:
        return "<stack>"


# --- what the stack has done -------------------------------------------------------------------
def instances(stack: Stack) -> dict[str, str]:
    """Every orchestration instance devhost knows (management API, master key): id -> runtime
    status and last update, so a run that took a signal shows up as well as a new one."""
    response = stack.session.get(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances",
        headers={"x-functions-key": stack.keys["masterKey"]},
        timeout=60,
    )
    response.raise_for_status()
    return {row["instanceId"]: f"{row['runtimeStatus']} {row['lastUpdatedTime']}" for row in response.json()}


def arm_requests(stack: Stack) -> dict[str, int]:
    """The Recovery Services emulator's request log: ARM operation -> count."""
    return dict(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"])


@dataclass(frozen=True)
class World:
    instances: dict[str, str]
    arm: dict[str, int]
    events: int

    @classmethod
    def of(cls, stack: Stack) -> World:
        stack.settle()
        return cls(instances(stack), arm_requests(stack), len(stack.downstream()))


@contextmanager
def nothing_started(stack: Stack) -> Iterator[None]:
    """The block starts no orchestration, changes no instance's status, calls no ARM operation
    and publishes no event; devhost is healthy afterwards."""
    before = World.of(stack)
    yield
    after = World.of(stack)
    assert after.instances == before.instances, "an orchestration was started or changed"
    assert after.arm == before.arm, "the Recovery Services emulator was called"
    assert after.events == before.events, "an event was published"
    assert_healthy(stack)


def assert_healthy(stack: Stack) -> None:
    assert stack.devhost.process.poll() is None, "devhost exited:\n" + stack.devhost.log_tail()
    status = stack.admin("devhost", "GET", "/admin/host/status")
    assert status["state"] == "Running"


def assert_problem(response: requests.Response, statuses: set[int], field: str | None = None) -> dict[str, Any]:
    """A 4xx ``application/problem+json`` answer (RFC 9457) with a detail, naming ``field`` when
    given; the body must be JSON a strict reader accepts."""
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers.get("Content-Type", "").startswith("application/problem+json"), response.headers
    body = strict_json(response.content)
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        # the field, or a part of it (``vms.1`` names the second of ``vms``)
        named = body.get("field")
        assert isinstance(named, str) and (named == field or named.startswith(field + ".")), body
    return dict(body)
