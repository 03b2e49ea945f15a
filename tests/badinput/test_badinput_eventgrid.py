"""Bad input to the upstream Event Grid trigger, posted to devhost's Event
Grid webhook (``/runtime/webhooks/eventgrid?functionName=upstream_event``) as Event Grid does:
hypothesis batches in the Event Grid and CloudEvents 1.0 schemas, with wrong types, hostile
strings, oversized data, malformed envelopes and bodies, mixed with good events.

- A delivery that is not a batch of events (not JSON, not objects, an envelope the Functions
  worker cannot read, too deep, too big) is answered 4xx and invokes nothing.
- Well-formed events the app cannot use (wrong types, no chain matches, data too big or not
  valid JSON text) are acknowledged (2xx: Event Grid must not redeliver them) and start nothing.
- In a mixed batch, exactly the matching good events start runs, named after their ids, and a
  redelivery of the batch starts nothing new.
No answer is a 5xx, and devhost stays healthy."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from backup_chain.ids import chain_instance_id, run_id_for_event
from backup_chain.text import is_unicode
from demo.stack import Stack
from harness.chain_stack import chain, next_weekday_at, scenario, start_stack, vm
from tests.badinput.support import (
    HTTP,
    HTTP_FEW,
    Quiet,
    World,
    assert_healthy,
    dumps,
    hostile_text,
    json_values,
    nothing_started,
)

ETL_TYPE = "Contoso.Etl.JobFinished"
ETL_SUBJECT = "/jobs/nightly-etl"
BATCH_TYPE = "Contoso.Batch.Done"
BATCH_PREFIX = "/batches/"
MATCHING_TYPES = {ETL_TYPE.lower(), BATCH_TYPE.lower()}
MAX_DELIVERY = 1024 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chains = [
        # onFailure "skip": the runs good events start here end at once, backing nothing up
        chain(
            "nightly",
            ["app01"],
            upstream={"eventType": ETL_TYPE, "subject": ETL_SUBJECT, "onFailure": "skip"},
            monitorTransfer=False,
        ),
        chain(
            "batch",
            ["app02"],
            upstream={"eventType": BATCH_TYPE, "subject": BATCH_PREFIX + "*", "onFailure": "skip"},
            monitorTransfer=False,
        ),
    ]
    running = start_stack(
        tmp_path_factory.mktemp("badinput-eventgrid"),
        scenario([vm("app01"), vm("app02")]),
        chains,
        start=next_weekday_at(0, 3),
    )
    try:
        running.settle()
        yield Quiet(running)
    finally:
        running.stop()


def deliver(
    stack: Stack, body: bytes, *, kind: str | None = "Notification", content_type: str | None = None
) -> requests.Response:
    headers = {"Content-Type": content_type or "application/cloudevents-batch+json; charset=utf-8"}
    if kind is not None:
        headers["aeg-event-type"] = kind
    return stack.session.post(
        f"{stack.devhost.url}/runtime/webhooks/eventgrid",
        params={"functionName": "upstream_event", "code": stack.keys["eventgrid_extension"]},
        data=body,
        headers=headers,
        timeout=60,
    )


# --- events ------------------------------------------------------------------------------------
_ids = itertools.count()


def fresh_id() -> str:
    return f"fuzz-{datetime.now(timezone.utc):%H%M%S%f}-{next(_ids)}"


# Times the Functions Python worker can read: UTC ("Z" or "+00:00"), or none at all.
times = st.one_of(
    st.none(),
    st.just(""),
    # hypothesis takes naive bounds and gives naive times, written out as UTC
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)).map(  # noqa: DTZ001
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ),
    st.just("2026-01-01T00:00:00.1234567Z"),  # Azure's seven fractional digits
    st.just("2026-01-01T00:00:00+00:00"),
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(json_values, max_size=3),
    st.dictionaries(hostile_text, json_values, max_size=3),
)
ids = st.one_of(hostile_text, wrong_types)
unmatched_types = st.one_of(hostile_text, wrong_types).filter(
    lambda t: not (isinstance(t, str) and t.lower() in MATCHING_TYPES)
)
subjects = st.one_of(hostile_text, wrong_types)
extensions = st.dictionaries(
    hostile_text.filter(lambda k: k not in {"specversion", "id", "source", "type", "time", "subject", "data"}),
    json_values,
    max_size=3,
)


def envelope(schema: str, event_id: Any, event_type: Any, subject: Any, data: Any, time: Any) -> dict[str, Any]:
    """An event in either schema; ``subject``/``time`` of None leave the attribute out."""
    if schema == "cloudevents":
        event = {"specversion": "1.0", "id": event_id, "source": "/upstream/fuzz", "type": event_type, "data": data}
        if time is not None:
            event["time"] = time
    else:
        event = {"id": event_id, "eventType": event_type, "data": data, "dataVersion": "1", "topic": "/t"}
        event["eventTime"] = time if time is not None else "2026-01-01T00:00:00Z"
    if subject is not None:
        event["subject"] = subject
    return event


schemas = st.sampled_from(["cloudevents", "eventgrid"])
unmatched_events = st.one_of(
    # no chain's type
    st.builds(envelope, schemas, ids, unmatched_types, subjects, json_values, times),
    # a chain's type (any case) with no chain's subject, or a subject that is not a string
    st.builds(
        envelope,
        schemas,
        ids,
        st.sampled_from([ETL_TYPE, ETL_TYPE.upper(), ETL_TYPE.lower()]),
        st.one_of(hostile_text.filter(lambda s: s != ETL_SUBJECT), wrong_types.filter(lambda v: v is not None)),
        json_values,
        times,
    ),
    # matching type and subject, but an id that is no string, or empty
    st.builds(
        envelope,
        schemas,
        st.one_of(wrong_types, st.just("")),
        st.just(ETL_TYPE),
        st.just(ETL_SUBJECT),
        json_values,
        times,
    ),
    # matching, with data no upstream report could be: too big, NaN/Infinity, invalid Unicode
    st.builds(
        envelope,
        schemas,
        st.just("fuzz-big"),
        st.just(BATCH_TYPE),
        st.just(BATCH_PREFIX + "b1"),
        st.one_of(
            st.integers(min_value=64 * 1024 + 1, max_value=200 * 1024).map(lambda n: {"status": "x" * n}),
            st.sampled_from([float("nan"), float("inf"), {"rows": [1, float("-inf")]}]),
            st.sampled_from(["\ud800", "\udfff", "a\udcffb"]).map(lambda s: {"status": "Succeeded", "detail": s}),
        ),
        times,
    ),
    # matching, with an id that is not valid Unicode text
    st.builds(
        envelope,
        schemas,
        st.sampled_from(["\ud800", "id-\udfff"]),
        st.just(ETL_TYPE),
        st.just(ETL_SUBJECT),
        json_values,
        times,
    ),
).flatmap(lambda e: extensions.map(lambda extra: {**extra, **e}) if "specversion" in e else st.just(e))


def batch_body(events: list[dict[str, Any]], single: bool) -> bytes:
    return dumps(events[0] if single and len(events) == 1 else events)


@HTTP
@given(st.lists(unmatched_events, min_size=1, max_size=4), st.booleans(), st.sampled_from(["Notification", None]))
@example([envelope("cloudevents", "\ud800", ETL_TYPE, ETL_SUBJECT, {"status": "Succeeded"}, None)], False, None)
@example([envelope("eventgrid", "e1", BATCH_TYPE, BATCH_PREFIX + "x", {"detail": "\udcff"}, None)], True, None)
@example([envelope("cloudevents", "e2", ETL_TYPE, ETL_SUBJECT, float("nan"), None)], True, "Notification")
def test_events_the_app_cannot_use_are_acknowledged_and_start_nothing(
    stack: Stack, events: list[dict[str, Any]], single: bool, kind: str | None
) -> None:
    with nothing_started(stack):
        response = deliver(stack, batch_body(events, single), kind=kind)
        assert 200 <= response.status_code < 300, (response.status_code, response.text[:300])


def deep_event(schema: str, depth: int) -> bytes:
    """A batch of one unmatched event whose data nests ``depth`` arrays deep (written by hand:
    json.dumps itself gives up past Python's recursion limit)."""
    head, tail = json.dumps([envelope(schema, fresh_id(), "Other.Type", "/s", "@", None)]).split('"@"')
    return head.encode() + b"[" * depth + b"]" * depth + tail.encode()


@HTTP_FEW
@given(schemas, st.integers(min_value=1, max_value=3_000))
@example("cloudevents", 940)
@example("eventgrid", 960)
@example("cloudevents", 975)
@example("eventgrid", 990)
def test_deeply_nested_event_data_is_acknowledged_or_refused_never_a_5xx(stack: Stack, schema: str, depth: int) -> None:
    """Around the parsers' recursion limits every layer (devhost, the worker's converter, the app)
    meets the same data at a different stack depth: each must refuse it cleanly or let it pass."""
    with nothing_started(stack):
        response = deliver(stack, deep_event(schema, depth))
        assert response.status_code in (202, 400), (depth, response.status_code, response.text[:300])


# --- deliveries that are not a batch of events -------------------------------------------------
bad_times = st.one_of(
    st.integers(min_value=1),
    st.floats(allow_nan=False, min_value=1),
    st.just(True),
    st.lists(json_values, min_size=1, max_size=2),
    st.dictionaries(hostile_text, json_values, min_size=1, max_size=2),
    hostile_text.filter(lambda s: s.strip() != "" and not s[:4].isdigit()),
    st.sampled_from(["2026-13-45T99:99:99Z", "yesterday", "0000-00-00T00:00:00Z", "2026-01-01T00:00:00+99:00"]),
    # Valid RFC 3339, but azure-functions (1.26) reads no offset other than +00:00: on Azure the
    # worker fails the invocation (500, retried, then dead-lettered); devhost refuses it up front.
    st.sampled_from(["2026-01-01T09:00:00+09:00", "2026-01-01T00:00:00.123-05:00"]),
)
undecodable_events = st.builds(
    envelope, schemas, st.just("bad-time"), st.just(ETL_TYPE), st.just(ETL_SUBJECT), st.just({}), bad_times
)


def good_event(schema: str) -> dict[str, Any]:
    return envelope(schema, fresh_id(), ETL_TYPE, ETL_SUBJECT, {"status": "Failed"}, "2026-01-01T00:00:00Z")


malformed_bodies = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda raw: not _is_json(raw)),
    st.sampled_from([b"[]", b"{}x", b"null", b"1", b'"event"', b"true", b"[1]", b'[{"id": "a"}, 2]', b"[[]]"]),
    json_values.filter(lambda v: not isinstance(v, (dict, list))).map(dumps),
    st.lists(json_values.filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=3).map(dumps),
    st.integers(min_value=2_000, max_value=200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=2_000, max_value=100_000).map(
        lambda n: b'[{"id": "deep", "data": ' + b"[" * n + b"]" * n + b"}]"
    ),
    # an envelope the Functions worker cannot read, alone or beside a good event that must not run
    st.builds(
        lambda bad, schema, good_first: dumps([good_event(schema), bad] if good_first else [bad]),
        undecodable_events,
        schemas,
        st.booleans(),
    ),
    # more than Event Grid ever delivers at once
    st.integers(min_value=MAX_DELIVERY + 1, max_value=MAX_DELIVERY + 4096).map(
        lambda n: dumps([envelope("cloudevents", "huge", "Other.Type", "/s", "z" * n, None)])
    ),
)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return True


@HTTP
@given(malformed_bodies, st.sampled_from(["Notification", None]))
@example(b"[" * 100_000, "Notification")
@example(dumps([envelope("cloudevents", "t", ETL_TYPE, ETL_SUBJECT, {}, 5)]), "Notification")
@example(dumps([envelope("eventgrid", "t", ETL_TYPE, ETL_SUBJECT, {}, "not a time")]), "Notification")
def test_malformed_deliveries_are_4xx_and_invoke_nothing(stack: Stack, body: bytes, kind: str | None) -> None:
    with nothing_started(stack):
        response = deliver(stack, body, kind=kind)
        expected = {413} if len(body) > MAX_DELIVERY else {400}
        assert response.status_code in expected, (response.status_code, response.text[:300])


@HTTP_FEW
@given(st.one_of(wrong_types.filter(lambda v: not isinstance(v, dict) or "validationCode" not in v), hostile_text))
@example("code")
@example(["code"])
def test_malformed_subscription_validation_is_400(stack: Stack, data: Any) -> None:
    event = {
        "id": "v1",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "subject": "",
        "data": data,
        "eventTime": "2026-01-01T00:00:00Z",
        "dataVersion": "1",
    }
    with nothing_started(stack):
        response = deliver(stack, dumps([event]), kind="SubscriptionValidation", content_type="application/json")
        assert response.status_code == 400, (response.status_code, response.text[:300])


@HTTP_FEW
@given(hostile_text.filter(lambda s: s != "upstream_event"))
def test_unknown_function_names_are_404(stack: Stack, name: str) -> None:
    params: dict[str, str | bytes] = {
        "functionName": name.encode("utf-8", "surrogatepass"),
        "code": stack.keys["eventgrid_extension"],
    }
    with nothing_started(stack):
        response = stack.session.post(
            f"{stack.devhost.url}/runtime/webhooks/eventgrid",
            params=params,
            data=dumps([good_event("cloudevents")]),
            headers={"aeg-event-type": "Notification"},
            timeout=60,
        )
        assert response.status_code == 404, (response.status_code, response.text[:300])


# --- mixed batches: exactly the good events start runs -----------------------------------------
good_events = st.builds(
    lambda schema, chain_type, subject_tail: envelope(
        schema,
        fresh_id(),
        chain_type,
        ETL_SUBJECT if chain_type == ETL_TYPE else BATCH_PREFIX + subject_tail,
        {"status": "Failed", "detail": {"note": subject_tail}},
        "2026-01-01T00:00:00Z",
    ),
    schemas,
    st.sampled_from([ETL_TYPE, BATCH_TYPE]),
    # Hostile but valid text: lone surrogates make an event unusable (acknowledged, not started).
    hostile_text.filter(is_unicode),
)


def expected_run(event: dict[str, Any]) -> str:
    chain_name = "nightly" if (event.get("type") or event.get("eventType")) == ETL_TYPE else "batch"
    return chain_instance_id(chain_name, run_id_for_event(event["id"]))


@HTTP_FEW
@given(st.lists(good_events, min_size=1, max_size=3), st.lists(unmatched_events, min_size=1, max_size=3), st.randoms())
def test_mixed_batches_start_exactly_the_good_events_once(
    stack: Stack, good: list[dict[str, Any]], bad: list[dict[str, Any]], rnd: Any
) -> None:
    events = good + bad
    rnd.shuffle(events)
    before = World.of(stack)
    response = deliver(stack, dumps(events))
    assert response.status_code == 202, (response.status_code, response.text[:300])
    after = World.of(stack)
    started = set(after.instances) - set(before.instances)
    assert started == {expected_run(e) for e in good}
    assert after.arm == before.arm  # a failed upstream with onFailure "skip" backs nothing up
    # Event Grid delivers at least once: the same batch again starts nothing
    with nothing_started(stack):
        assert deliver(stack, dumps(events)).status_code == 202
    assert_healthy(stack)


EDGE_TIMES = ["0001-01-01T00:00:00Z", "0001-01-08T23:59:59Z", "9999-12-31T23:59:59Z"]


@HTTP_FEW
@given(schemas, st.sampled_from(EDGE_TIMES))
@example("eventgrid", "0001-01-01T00:00:00Z")
@example("cloudevents", "0001-01-01T00:00:00Z")
def test_good_events_at_the_ends_of_time_start_one_run_and_a_redelivery_none(
    stack: Stack, schema: str, time: str
) -> None:
    """The upstream dedupe window is anchored at the event's own time: a time in the first days
    of year 1 must not overflow it (a 5xx Event Grid redelivers for a day, never starting the run)."""
    event = envelope(schema, fresh_id(), ETL_TYPE, ETL_SUBJECT, {"status": "Failed"}, time)
    before = World.of(stack)
    response = deliver(stack, dumps([event]))
    assert response.status_code == 202, (response.status_code, response.text[:300])
    after = World.of(stack)
    assert set(after.instances) - set(before.instances) == {expected_run(event)}
    with nothing_started(stack):
        assert deliver(stack, dumps([event])).status_code == 202
