"""The Kusto queries of the docs ask for what the app really sends to Application Insights: the
app's telemetry runs for real (azure-monitor-opentelemetry, posting to a loopback ingestion
endpoint) on every documented event example, and each query's table, event/metric names, message
filters and customDimensions keys must be among the captured rows; operations.md's list of which
events carry which custom dimension must be what the capture shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backup_chain.events import EVENT_TYPES
from telemetry import UNDELIVERED_METRIC
from tests.docs.kusto import doc_queries, problems
from tests.docs.telemetry_capture import Emitted, capture


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    return capture()


def test_the_capture_sees_every_event_type_the_undelivered_event_and_metric(emitted: Emitted) -> None:
    names = {row.name for row in emitted.table("customEvents")}
    assert {f"BackupChain.{t}" for t in EVENT_TYPES} | {"EventUndelivered"} == names
    assert {row.name for row in emitted.table("customMetrics")} == {UNDELIVERED_METRIC}
    completed = [row for row in emitted.table("customEvents") if row.name == "BackupChain.ChainCompleted"]
    assert completed and all("outcome" in row.dimensions for row in completed)


def test_the_docs_have_the_operations_queries() -> None:
    sources = [query.source for query in doc_queries()]
    assert sum(source.startswith("docs/operations.md:") for source in sources) >= 7, sources


@pytest.mark.parametrize("query", doc_queries(), ids=lambda query: query.source)
def test_each_doc_query_asks_only_for_what_is_emitted(query, emitted: Emitted) -> None:
    assert problems(query.text, emitted) == []


GOOD = """customEvents
| where timestamp > ago(7d) and name endswith ".ChainCompleted"
| summarize runs = dcount(tostring(customDimensions.runId)) by outcome = tostring(customDimensions.outcome)"""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (GOOD.replace("customDimensions.outcome", "customDimensions.result"), "customDimensions.result"),
        (GOOD.replace("customDimensions.outcome", 'customDimensions["Outcome"]'), "customDimensions.Outcome"),
        # A key other events carry, but not the one the query filters on.
        (GOOD.replace("customDimensions.outcome", "customDimensions.errorCode"), "customDimensions.errorCode"),
        (GOOD.replace(".ChainCompleted", ".ChainFinished"), "'.ChainFinished'"),
        (GOOD.replace("customEvents", "customMetrics"), "'.ChainCompleted'"),
        (GOOD.replace("customEvents", "requests"), "table requests"),
        ('customMetrics\n| where name == "backupchain.events.dropped"', "'backupchain.events.dropped'"),
        (
            'customMetrics\n| where name == "backupchain.events.undelivered"\n'
            "| summarize sum(value) by tostring(customDimensions.chain)",
            "customDimensions.chain",
        ),
        ('traces\n| where message has "chain run finished"', "table traces"),
        (
            'traces\n| where tostring(customDimensions.Category) startswith "Function."\n'
            "| summarize count() by tostring(customDimensions.runId)",
            "customDimensions.runId",
        ),
        (
            'traces\n| where tostring(customDimensions.Category) startswith "Function."\n'
            '| where message has "undelivered"',
            "message has",
        ),
        (
            'traces\n| where customDimensions.Category == "Host.Triggers.DurableTask"\n'
            '| extend i = tostring(customDimensions["prop__instance"])',
            "prop__instance",
        ),
        (
            'traces\n| where customDimensions.Category == "Host.Triggers.DurableTask"\n'
            '| extend i = tostring(customDimensions["prop__instanceId"]) | where i startswith "run:"',
            "'run:'",
        ),
        (
            'traces\n| where customDimensions.Category == "Host.Triggers.DurableTask"\n'
            '| extend state = tostring(customDimensions["prop__state"]) | where state in ("Completed", "Done")',
            "'Done'",
        ),
    ],
)
def test_the_checker_names_what_a_wrong_query_relies_on(query: str, expected: str, emitted: Emitted) -> None:
    assert problems(GOOD, emitted) == []
    found = problems(query, emitted)
    assert any(expected in problem for problem in found), found


OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_dimensions() -> dict[str, set[str]]:
    """operations.md's table: custom dimension → the event types it says carry it."""
    text = OPERATIONS.read_text()
    table = text[text.index("| dimension | on |") :].split("\n\n", 1)[0]
    found = {}
    for row in table.splitlines()[2:]:
        dimension, on = (cell.strip() for cell in row.strip("|").split("|"))
        names = set(re.findall(r"`(\w+)`", on))
        found[dimension.strip("`")] = set(EVENT_TYPES) if on.startswith("every event") else names & set(EVENT_TYPES)
    return found


def test_the_dimension_table_says_which_events_carry_each_dimension(emitted: Emitted) -> None:
    events = [row for row in emitted.table("customEvents") if row.name.startswith("BackupChain.")]
    carried: dict[str, set[str]] = {}
    for row in events:
        for dimension in row.dimensions - {"logger_name"}:  # logger_name: the exporter's own
            carried.setdefault(dimension, set()).add(row.name.removeprefix("BackupChain."))
    assert documented_dimensions() == carried


def test_the_undelivered_event_and_metric_dimensions_are_the_documented_ones(emitted: Emitted) -> None:
    text = " ".join(OPERATIONS.read_text().split())
    event_doc = re.search(r"custom event `EventUndelivered` \(dimensions ([^)]*)\)", text)
    metric_doc = re.search(r"`backupchain\.events\.undelivered` \(\*\*customMetrics\*\*, dimensions ([^,]*)", text)
    assert event_doc and metric_doc
    undelivered = {d for row in emitted.table("customEvents") if row.name == "EventUndelivered" for d in row.dimensions}
    assert undelivered - {"logger_name"} == set(re.findall(r"`(\w+)`", event_doc.group(1)))
    metric = {d for row in emitted.table("customMetrics") for d in row.dimensions}
    assert metric == set(re.findall(r"`(\w+)`", metric_doc.group(1)))
