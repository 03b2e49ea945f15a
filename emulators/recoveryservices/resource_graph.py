"""Azure Resource Graph's ``POST /providers/Microsoft.ResourceGraph/resources`` for the VM queries
the app makes (backup_chain/membership.py). No KQL engine: exactly these lines are understood,
anything else is a 400 as Resource Graph answers an invalid query::

    Resources
    | where type =~ 'microsoft.compute/virtualmachines'
    | where resourceGroup in~ ('rg-a', 'rg-b')        (optional)
    | where isnotnull(tags['name'])                    (any number: the VM has the tag)
    | where tags['name'] =~ 'value'                    (any number: the tag's value, case-insensitive)
    | project id
    | order by id asc

Shapes: QueryRequest / QueryResponse of specification/resourcegraph 2021-03-01 (azure-rest-api-specs;
the SDK's api-version): ``$top`` (default 100, at most 1000), ``$skip``, ``$skipToken``,
``resultFormat`` objectArray; the answer's ``totalRecords``, ``count``, ``resultTruncated``,
``$skipToken``, ``data`` and ``facets``. Every answer carries the quota headers
``x-ms-user-quota-remaining`` and ``x-ms-user-quota-resets-after`` (15 queries per 5-second window,
learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests);
the quota is enforced only when a test asks (``throttle``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulators.recoveryservices.scenario import MachineSpec

API_VERSIONS = ("2021-03-01", "2019-04-01")
DEFAULT_TOP, MAX_TOP = 100, 1000
QUOTA, QUOTA_WINDOW = 15, 5.0
_STRING = r"'((?:[^'\\]|\\.)*)'"
_LINES = (
    ("table", re.compile(r"Resources")),
    ("type", re.compile(r"\|\s*where\s+type\s*=~\s*" + _STRING)),
    (
        "groups",
        re.compile(r"\|\s*where\s+resourceGroup\s+in~\s*\(\s*(" + _STRING + r"(?:\s*,\s*" + _STRING + r")*)\s*\)"),
    ),
    ("hasTag", re.compile(r"\|\s*where\s+isnotnull\(\s*tags\[\s*" + _STRING + r"\s*\]\s*\)")),
    ("tag", re.compile(r"\|\s*where\s+tags\[\s*" + _STRING + r"\s*\]\s*=~\s*" + _STRING)),
    ("project", re.compile(r"\|\s*project\s+id")),
    ("order", re.compile(r"\|\s*order\s+by\s+id\s+asc")),
)


class GraphError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _invalid(detail: str) -> GraphError:
    # The shape Resource Graph answers an invalid query with: BadRequest, details InvalidQuery.
    return GraphError(
        400,
        {
            "error": {
                "code": "BadRequest",
                "message": "Please provide below info when asking for support: the emulator's query log.",
                "details": [
                    {
                        "code": "InvalidQuery",
                        "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph "
                        "service and fix the error before retrying.",
                    },
                    {"code": "UnsupportedQuery", "message": detail},
                ],
            }
        },
    )


@dataclass(frozen=True)
class VmQuery:
    groups: tuple[str, ...] | None
    has_tags: tuple[str, ...]
    tag_values: tuple[tuple[str, str], ...]

    def matches(self, vm: MachineSpec) -> bool:
        tags = dict(vm.tags)
        if self.groups is not None and vm.resource_group.lower() not in {g.lower() for g in self.groups}:
            return False
        if any(name not in tags for name in self.has_tags):
            return False
        return all(name in tags and tags[name].lower() == value.lower() for name, value in self.tag_values)


def parse_query(text: str) -> VmQuery:
    """The query's criteria; GraphError 400 for anything but the documented lines in order."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    groups: tuple[str, ...] | None = None
    has_tags: list[str] = []
    values: list[tuple[str, str]] = []
    order = [kind for kind, _ in _LINES]
    seen: set[str] = set()
    last = -1
    for line in lines:
        kind, found = next(((k, p.fullmatch(line)) for k, p in _LINES if p.fullmatch(line)), ("", None))
        if found is None:
            raise _invalid(f"the emulator does not understand {line!r} (emulators/README.md lists what it answers)")
        position = order.index(kind)
        repeatable = kind in ("hasTag", "tag")
        if position < last or (position == last and not repeatable):
            raise _invalid(f"{line!r} is out of the order the emulator answers")
        last = position
        if kind == "type" and _unescape(found.group(1)).lower() != "microsoft.compute/virtualmachines":
            raise _invalid("the emulator lists virtual machines only")
        if kind == "groups":
            groups = tuple(_unescape(g) for g in re.findall(_STRING, found.group(1)))
        elif kind == "hasTag":
            has_tags.append(_unescape(found.group(1)))
        elif kind == "tag":
            values.append((_unescape(found.group(1)), _unescape(found.group(2))))
        seen.add(kind)
    if not {"table", "type", "project", "order"} <= seen:
        raise _invalid("the query must read Resources, filter type, project id and order by id asc")
    return VmQuery(groups, tuple(has_tags), tuple(values))


def _hhmmss(seconds: float) -> str:
    whole = max(0, int(seconds + 0.999))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@dataclass
class ResourceGraph:
    """The queries answered, the quota window and the throttling a test asked for."""

    page_size: int | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)
    throttle_next: int = 0
    throttle_resets_after: float = 1.0
    window_start: float = 0.0
    used: int = 0

    def quota_headers(self, now: float) -> dict[str, str]:
        if now - self.window_start >= QUOTA_WINDOW:
            self.window_start, self.used = now, 0
        self.used += 1
        return {
            "x-ms-user-quota-remaining": str(max(0, QUOTA - self.used)),
            "x-ms-user-quota-resets-after": _hhmmss(self.window_start + QUOTA_WINDOW - now),
        }

    def answer(self, body: Any, machines: dict[str, MachineSpec], now: float) -> tuple[dict[str, Any], dict[str, str]]:
        if self.throttle_next > 0:
            self.throttle_next -= 1
            self.queries.append({"throttled": True})
            raise GraphError(
                429,
                {"error": {"code": "RateLimiting", "message": "Client application has been throttled."}},
                {"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": _hhmmss(self.throttle_resets_after)},
            )
        headers = self.quota_headers(now)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise _invalid("the request body needs 'query' (a string)")
        query = parse_query(body["query"])
        options = body.get("options") or {}
        if options.get("resultFormat", "objectArray") != "objectArray":
            raise _invalid("the emulator answers resultFormat objectArray only")
        subscriptions = {str(s).lower() for s in body.get("subscriptions") or []}
        rows = sorted(
            (vm.id for vm in machines.values() if not subscriptions or vm.subscription_id.lower() in subscriptions),
            key=str.lower,
        )
        rows = [vm_id for vm_id in rows if query.matches(machines[vm_id.lower()])]
        top = int(options.get("$top") or DEFAULT_TOP)
        if not 1 <= top <= MAX_TOP:
            raise _invalid(f"$top must be 1..{MAX_TOP}")
        page = min(top, self.page_size or top)
        fingerprint = hashlib.sha256(json.dumps([body["query"], sorted(subscriptions)]).encode()).hexdigest()[:16]
        offset = int(options.get("$skip") or 0)
        if options.get("$skipToken"):
            offset = _read_token(options["$skipToken"], fingerprint)
        data = [{"id": vm_id} for vm_id in rows[offset : offset + page]]
        answer: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(data),
            "resultTruncated": "false",
            "data": data,
            "facets": [],
        }
        if offset + page < len(rows):
            answer["$skipToken"] = _token(offset + page, fingerprint)
        self.queries.append({"query": body["query"], "subscriptions": sorted(subscriptions), "offset": offset})
        return answer, headers


def _token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": fingerprint}).encode()).decode()


def _read_token(token: str, fingerprint: str) -> int:
    try:
        state = json.loads(base64.urlsafe_b64decode(str(token)))
        if state["q"] == fingerprint:
            return int(state["o"])
    except (ValueError, TypeError, KeyError):
        pass
    raise _invalid("the $skipToken is not one this query's previous page returned")
