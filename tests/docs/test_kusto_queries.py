"""The Kusto queries of the docs ask for what the app really sends to Application Insights: the
app's telemetry runs for real (azure-monitor-opentelemetry, posting to a loopback ingestion
endpoint) on every documented event example, and each query's table, event/metric names, message
filters and customDimensions keys must be among the captured rows."""

from __future__ import annotations

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
