"""Bad input to the HTTP API: hypothesis-generated bodies, content types,
path segments and query values against devhost + both emulators (one stack for the module, manual
clock). Every invalid request gets a 4xx ``application/problem+json`` answer that names the field
at fault, and starts nothing: no orchestration instance appears or changes (devhost's Durable
management API), the Recovery Services emulator sees no request, no event is published, and
devhost is still healthy afterwards."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from demo.stack import Stack, vm_id
from harness.chain_stack import chain, next_weekday_at, scenario, start_stack, vm
from tests.badinput.support import (
    CONTENT_TYPES,
    HTTP,
    HTTP_FEW,
    Quiet,
    World,
    assert_healthy,
    assert_problem,
    dumps,
    hostile_text,
    json_values,
    nothing_started,
    strict_json,
)

ETL_TYPE = "Contoso.Etl.JobFinished"
WAITING = "fuzz-wait"  # a run of chain "nightly" that waits for upstream the whole module long
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
CHAIN_VMS = {vm_id("app01").lower(), vm_id("app02").lower()}
START_FIELDS = {"runId", "waitForUpstream", "upstream", "vms"}
MAX_BODY = 64 * 1024
MAX_DETAIL = 16 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chains = [
        chain(
            "nightly",
            ["app01", "app02"],
            upstream={"eventType": ETL_TYPE, "subject": "/jobs/nightly-etl", "timeout": "P1D", "onFailure": "skip"},
            monitorTransfer=False,
        ),
        chain("adhoc", ["app03"], monitorTransfer=False),
    ]
    running = start_stack(
        tmp_path_factory.mktemp("badinput-http"),
        scenario([vm("app01"), vm("app02"), vm("app03")]),
        chains,
        start=next_weekday_at(0, 3),  # a Monday: the emulator's weekly (Wednesday) backups stay away
        gc={"mode": "weekly-policy"},  # so POST /api/gc/run reads its body
    )
    try:
        response = running.api("POST", "chains/nightly/runs", {"runId": WAITING, "waitForUpstream": True})
        assert response.status_code == 202, response.text
        running.wait(lambda: phase(running, "nightly", WAITING) == "waitingForUpstream", what="the run to wait")
        yield Quiet(running)
    finally:
        running.stop()


def phase(stack: Stack, chain_name: str, run_id: str) -> Any:
    response = stack.api("GET", f"chains/{chain_name}/runs/{run_id}")
    assert response.status_code == 200, response.text
    return strict_json(response.content)["phase"]


def post(stack: Stack, path: str, body: bytes, content_type: str | None) -> requests.Response:
    headers = {"x-functions-key": stack.keys["function"]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return stack.session.post(f"{stack.devhost.url}/api/{path}", data=body, headers=headers, timeout=60)


@dataclass(frozen=True)
class Bad:
    """An invalid request body and what the API must answer: one of ``statuses``, naming ``field``
    (None: a body-level problem such as bad JSON, where no field is at fault)."""

    body: bytes
    statuses: frozenset[int]
    field: str | None = None
    why: str = ""


def bad(value: Any, field: str | None, why: str) -> Bad:
    return Bad(dumps(value), frozenset({400}), field, why)


# --- bodies that are not a JSON object ----------------------------------------------------------
def _parses_as_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


# Python's json module reads NaN and Infinity; they are not JSON (RFC 8259) and no strict client
# could read a run that stored them.
NON_STANDARD_CONSTANTS = [b"NaN", b"Infinity", b"-Infinity"]
not_json = st.one_of(
    st.binary(min_size=1, max_size=300).filter(lambda raw: raw.strip() != b"" and not _parses_as_object(raw)),
    st.sampled_from([b"{", b"{'runId': 'r'}", b"{runId: r}", b"\x00", b"{}}", b'{"a":1,}', b'{"a":1}{}']),
    st.integers(min_value=1, max_value=100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
).map(lambda raw: Bad(raw, frozenset({400}), None, "not a JSON object"))
not_an_object = json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: bad(v, None, "not an object"))
oversized = st.integers(min_value=MAX_BODY + 1, max_value=4 * MAX_BODY).map(
    lambda n: Bad(b'{"runId": "big", "x": "' + b"x" * n + b'"}', frozenset({413}), None, "oversized")
)


def with_constant(template: bytes) -> st.SearchStrategy[Bad]:
    return st.sampled_from(NON_STANDARD_CONSTANTS).map(
        lambda c: Bad(template.replace(b"@", c), frozenset({400}), None, "NaN/Infinity")
    )


# --- POST /api/chains/{chain}/runs ---------------------------------------------------------------
valid_run_ids = st.from_regex(RUN_ID, fullmatch=True).map(lambda s: ("bad-" + s)[:80])
base_start = st.fixed_dictionaries({}, optional={"runId": valid_run_ids, "waitForUpstream": st.just(False)})
unknown_keys = hostile_text.filter(lambda k: k not in START_FIELDS)


def _with(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**base, **fields}


start_unknown_field = st.builds(
    lambda base, key, value: bad({**base, key: value}, key, "unknown field"), base_start, unknown_keys, json_values
)
start_wrong_types = st.one_of(
    st.builds(
        lambda base, v: bad(_with(base, runId=v), "runId", "runId type"),
        base_start,
        json_values.filter(lambda v: v is not None and not isinstance(v, str)),
    ),
    st.builds(
        lambda base, v: bad(_with(base, waitForUpstream=v), "waitForUpstream", "waitForUpstream type"),
        base_start,
        json_values.filter(lambda v: not isinstance(v, bool)),
    ),
    st.builds(
        lambda base, v: bad(_with(base, upstream=v), "upstream", "upstream type"),
        base_start,
        json_values.filter(lambda v: v is not None and not isinstance(v, dict)),
    ),
    st.builds(
        lambda base, v: bad(_with(base, vms=v), "vms", "vms type"),
        base_start,
        json_values.filter(lambda v: v is not None and not isinstance(v, list)),
    ),
)
start_bad_run_ids = hostile_text.filter(lambda s: RUN_ID.fullmatch(s) is None).map(
    lambda s: bad({"runId": s}, "runId", "runId pattern")
)
not_a_vm_id = hostile_text | st.builds(
    lambda name: f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}", hostile_text
)
other_vms = (
    st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True).map(vm_id).filter(lambda v: v.lower() not in CHAIN_VMS)
)
start_bad_vms = st.one_of(
    st.just(bad({"vms": []}, "vms", "no VMs")),
    st.builds(
        lambda good, v: Bad(dumps({"vms": [*good, v]}), frozenset({400}), f"vms.{len(good)}", "VM not a string"),
        st.lists(st.sampled_from(sorted(CHAIN_VMS)), max_size=2),
        json_values.filter(lambda v: not isinstance(v, str)),
    ),
    st.builds(lambda v: bad({"vms": [v]}, "vms", "not a VM id"), not_a_vm_id),
    st.builds(
        lambda good, other: bad({"vms": [*good, other]}, "vms", "not a target"),
        st.lists(st.sampled_from([vm_id("app01"), vm_id("app02")]), max_size=2),
        other_vms,
    ),
)
upstream_statuses = json_values.filter(lambda v: v not in ("Succeeded", "Failed"))
start_bad_upstream = st.one_of(
    st.builds(
        lambda d: bad({"upstream": d}, "upstream.status", "no status"),
        st.just({}) | st.builds(dict, detail=json_values),
    ),
    st.builds(lambda s: bad({"upstream": {"status": s}}, "upstream.status", "bad status"), upstream_statuses),
    st.builds(
        lambda key, v: bad({"upstream": {"status": "Failed", key: v}}, f"upstream.{key}", "unknown upstream field"),
        hostile_text.filter(lambda k: k not in ("status", "detail")),
        json_values,
    ),
    st.integers(min_value=MAX_DETAIL + 1, max_value=MAX_BODY - 200).map(
        lambda n: bad({"upstream": {"status": "Succeeded", "detail": "x" * n}}, "upstream.detail", "detail too big")
    ),
    st.builds(
        lambda s: bad({"waitForUpstream": True, "upstream": {"status": s}}, "upstream", "wait and upstream"),
        st.sampled_from(["Succeeded", "Failed"]),
    ),
)
bad_start_bodies = st.one_of(
    not_json,
    not_an_object,
    oversized,
    with_constant(b'{"runId": "r-const", "upstream": {"status": "Failed", "detail": @}}'),
    with_constant(b'{"runId": "r-const", "upstream": {"status": "Failed", "detail": {"rows": [1, @]}}}'),
    start_unknown_field,
    start_wrong_types,
    start_bad_run_ids,
    start_bad_vms,
    start_bad_upstream,
)


def check(stack: Stack, path: str, case: Bad, content_type: str | None, limit: int = MAX_BODY) -> None:
    statuses = {413} if len(case.body) > limit else set(case.statuses)
    with nothing_started(stack):
        response = post(stack, path, case.body, content_type)
        assert_problem(response, statuses, case.field if statuses != {413} else None)


@HTTP
@given(bad_start_bodies, st.sampled_from(CONTENT_TYPES))
@example(Bad(b'{"upstream": {"status": "Failed", "detail": NaN}}', frozenset({400})), "application/json")
@example(Bad(b"\xff\xfe", frozenset({400})), None)
def test_bad_start_bodies_are_4xx_naming_the_field_and_start_nothing(
    stack: Stack, case: Bad, content_type: str | None
) -> None:
    check(stack, "chains/nightly/runs", case, content_type)


@HTTP_FEW
@given(st.none() | valid_run_ids)
def test_waiting_for_upstream_on_a_chain_without_upstream_is_400(stack: Stack, run_id: str | None) -> None:
    body = {"waitForUpstream": True} if run_id is None else {"runId": run_id, "waitForUpstream": True}
    check(stack, "chains/adhoc/runs", bad(body, "waitForUpstream", "no upstream"), "application/json")


# --- POST /api/chains/{chain}/runs/{runId}/upstream ----------------------------------------------
bad_reports = st.one_of(
    not_json,
    not_an_object,
    oversized,
    with_constant(b'{"status": "Failed", "detail": @}'),
    st.sampled_from([b"", b" ", b"\r\n\t"]).map(lambda raw: Bad(raw, frozenset({400}), None, "no body")),
    st.just(bad({}, "status", "no status")),
    st.builds(lambda d: bad({"detail": d}, "status", "no status"), json_values),
    st.builds(lambda s: bad({"status": s}, "status", "bad status"), upstream_statuses),
    st.builds(
        lambda key, v: bad({"status": "Succeeded", key: v}, key, "unknown field"),
        hostile_text.filter(lambda k: k not in ("status", "detail")),
        json_values,
    ),
    st.integers(min_value=MAX_DETAIL + 1, max_value=MAX_BODY - 100).map(
        lambda n: bad({"status": "Succeeded", "detail": ["y" * n]}, "detail", "detail too big")
    ),
    # text that is no Unicode (a lone surrogate escape): no event carrying it could be published
    st.sampled_from(["\ud800", "a\udcffb", "\udfff"]).flatmap(
        lambda s: st.sampled_from(
            [
                bad({"status": "Failed", "detail": s}, "detail", "lone surrogate"),
                bad({"status": "Failed", "detail": {"rows": [1, {"note": s}]}}, "detail", "lone surrogate"),
                bad({"status": "Failed", "detail": {s: 1}}, "detail", "lone surrogate key"),
                bad({"status": s}, "status", "lone surrogate status"),
            ]
        )
    ),
)


@HTTP
@given(bad_reports, st.sampled_from(CONTENT_TYPES))
def test_bad_upstream_reports_are_4xx_and_the_run_keeps_waiting(
    stack: Stack, case: Bad, content_type: str | None
) -> None:
    check(stack, f"chains/nightly/runs/{WAITING}/upstream", case, content_type)
    assert phase(stack, "nightly", WAITING) == "waitingForUpstream"


# --- POST /api/gc/run ----------------------------------------------------------------------------
bad_gc_bodies = st.one_of(
    not_json,
    with_constant(b'{"kind": @}'),
    st.builds(lambda v: bad(v, "kind", "not an object"), json_values.filter(lambda v: not isinstance(v, dict))),
    st.builds(
        lambda key, v, extra: bad({key: v, **extra}, "kind", "unknown field"),
        hostile_text.filter(lambda k: k != "kind"),
        json_values,
        st.fixed_dictionaries({}, optional={"kind": st.just("check")}),
    ),
    st.builds(lambda v: bad({"kind": v}, "kind", "bad kind"), json_values.filter(lambda v: v != "check")),
    st.integers(min_value=4097, max_value=MAX_BODY).map(
        lambda n: Bad(dumps({"kind": "check", "pad": "p" * n}), frozenset({413}), None, "oversized")
    ),
)


@HTTP
@given(bad_gc_bodies, st.sampled_from(CONTENT_TYPES))
@example(Bad(b'{"kind": "\xff"}', frozenset({400})), "application/json")
@example(Bad(b"[" * 100_000, frozenset({400})), None)
def test_bad_gc_run_bodies_are_4xx_naming_kind_and_start_nothing(
    stack: Stack, case: Bad, content_type: str | None
) -> None:
    check(stack, "gc/run", case, content_type, limit=4096)


# --- hostile path segments and query values ------------------------------------------------------
ROUTES = [
    ("POST", "chains/{chain}/runs"),
    ("GET", "chains/{chain}/runs"),
    ("GET", "chains/{chain}/runs/{run}"),
    ("POST", "chains/{chain}/runs/{run}/upstream"),
    ("POST", "chains/{chain}/runs/{run}/cancel"),
    ("POST", "chains/{chain}/runs/{run}/deliveries/retry"),
]


def segment(text: str) -> str:
    """One path segment as a client encodes it; dots too, so no client or proxy folds ``..``."""
    return quote(text, safe="", errors="surrogatepass").replace(".", "%2E")


hostile_chains = hostile_text.filter(lambda s: s.lower() not in ("nightly", "adhoc"))
hostile_runs = hostile_text.filter(lambda s: RUN_ID.fullmatch(s) is None) | valid_run_ids.map(lambda s: "nx" + s[3:])


@HTTP
@given(st.sampled_from(ROUTES), st.booleans(), hostile_chains, hostile_runs)
@example(("POST", "chains/{chain}/runs/{run}/cancel"), False, "x", "..")
@example(("POST", "chains/{chain}/runs"), True, "..", "x")
@example(("POST", "chains/{chain}/runs/{run}/upstream"), False, "x", WAITING + "\n")
@example(("POST", "chains/{chain}/runs/{run}/deliveries/retry"), True, "x", WAITING)
@example(("POST", "chains/{chain}/runs/{run}/deliveries/retry"), False, "x", "nx-never-started")
@example(("POST", "chains/{chain}/runs/{run}/deliveries/retry"), False, "x", "..")
def test_hostile_chain_names_and_run_ids_are_4xx_and_start_nothing(
    stack: Stack, route: tuple[str, str], bad_chain: bool, chain_name: str, run_id: str
) -> None:
    """A hostile chain name (with the waiting run's id) or a hostile run id of a real chain: the
    API answers 404 naming it (or the router a plain 4xx) and touches nothing, with a body that
    would be valid."""
    method, template = route
    bad_chain = bad_chain or "{run}" not in template
    path = template.format(
        chain=segment(chain_name) if bad_chain else "nightly", run=WAITING if bad_chain else segment(run_id)
    )
    body = None
    if template.endswith("upstream"):
        body = b'{"status": "Succeeded"}'
    elif method == "POST" and template.endswith("runs"):
        body = dumps({"runId": "seg-x"})
    with nothing_started(stack):
        response = stack.session.request(
            method,
            f"{stack.devhost.url}/api/{path}",
            data=body,
            headers={"x-functions-key": stack.keys["function"]},
            timeout=60,
        )
        if method == "GET" and run_id == "" and not bad_chain:
            # ".../runs/" is the listing route, as in ASP.NET routing: a read, nothing else
            assert response.status_code == 200, response.text[:300]
            return
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        if response.headers.get("Content-Type", "").startswith("application/problem+json"):
            problem = strict_json(response.content)
            assert problem["field"] == ("chain" if bad_chain else "runId"), problem


# --- the downstream delivery routes ------------------------------------------------------------
DELIVERY_ROUTES = {
    "deliveries": "GET",
    "deliveries/retry": "POST",
    f"chains/nightly/runs/{WAITING}/deliveries/retry": "POST",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
any_body = st.one_of(
    st.none(),
    json_values.map(dumps),
    st.binary(max_size=200),
    st.integers(min_value=MAX_BODY + 1, max_value=2 * MAX_BODY).map(lambda n: b"x" * n),
)


@HTTP_FEW
@given(st.sampled_from(sorted(DELIVERY_ROUTES)), st.sampled_from(METHODS), any_body)
@example("deliveries", "DELETE", None)
@example(f"chains/nightly/runs/{WAITING}/deliveries/retry", "GET", None)
def test_delivery_routes_refuse_other_methods_ignore_bodies_and_start_nothing(
    stack: Stack, route: str, method: str, body: bytes | None
) -> None:
    """With nothing kept, the delivery routes start nothing whatever is sent: another method is a
    plain 4xx from the router; the route's own method takes no body, so any body is ignored."""
    with nothing_started(stack):
        response = stack.session.request(
            method,
            f"{stack.devhost.url}/api/{route}",
            data=body,
            headers={"x-functions-key": stack.keys["function"]},
            timeout=60,
        )
        if method != DELIVERY_ROUTES[route]:
            assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
            return
        assert response.status_code in (200, 202), (response.status_code, response.text[:300])
        answer = strict_json(response.content)
        assert answer.get("runs", []) == [] and answer.get("retried", 0) == 0, answer


@HTTP
@given(hostile_text | st.integers().map(str))
@example("1e3")
@example("\u0663")  # ARABIC-INDIC DIGIT THREE: int() reads it as top=3
def test_hostile_top_is_400_naming_top_or_a_listing(stack: Stack, top: str) -> None:
    """``top`` is read with Python's int(): whatever it takes in 1-500 lists runs, anything else
    is a 400 naming ``top``; no value fails the function or starts anything."""
    with nothing_started(stack):
        response = stack.session.get(
            f"{stack.devhost.url}/api/chains/nightly/runs",
            params={"top": top.encode("utf-8", "surrogatepass")},
            headers={"x-functions-key": stack.keys["function"]},
            timeout=60,
        )
        if response.status_code == 200:
            assert isinstance(strict_json(response.content)["runs"], list)
        else:
            assert_problem(response, {400}, "top")


# --- hostile but valid: stored and read back exactly ---------------------------------------------
_runs = itertools.count()


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _unicode(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@HTTP_FEW
@given(json_values.filter(_unicode))
@example({"nested": nested(64)})
@example({"text": "'; DROP TABLE instances; --\x00\u202e\U0001f4a5", "big": 10**40, "": None})
def test_hostile_upstream_details_are_stored_and_read_back_verbatim(stack: Stack, detail: Any) -> None:
    """Any JSON that is Unicode text is a valid ``detail``, hostile strings and all: it reaches the
    run and comes back as the same JSON (in the run's output), in a response every strict JSON
    reader accepts."""
    run_id = f"fuzz-detail-{next(_runs)}"
    assert stack.api("POST", "chains/nightly/runs", {"runId": run_id, "waitForUpstream": True}).status_code == 202
    stack.wait(lambda: phase(stack, "nightly", run_id) == "waitingForUpstream", what="the run to wait")
    before = World.of(stack)
    report = post(stack, f"chains/nightly/runs/{run_id}/upstream", dumps({"status": "Failed", "detail": detail}), None)
    assert report.status_code == 202, report.text
    stack.wait(lambda: phase(stack, "nightly", run_id) == "completed", what="the run to take the report")
    run = stack.wait(
        lambda: (r := strict_json(stack.api("GET", f"chains/nightly/runs/{run_id}").content))["output"] and r,
        what="the run's output",
    )
    assert run["outcome"] == "skipped"
    assert run["output"]["upstream"]["detail"] == detail
    # custom status (capped at 16 KB in Azure) shows a small detail as it is, a large one marked
    shown = run["custom"]["upstream"]["detail"]
    assert shown == detail or (shown["truncated"] is True and shown["size"] > 1024)
    after = World.of(stack)
    # a failed upstream with onFailure "skip" backs nothing up
    assert after.arm == before.arm
    assert set(after.instances) == set(before.instances)
    assert_healthy(stack)
