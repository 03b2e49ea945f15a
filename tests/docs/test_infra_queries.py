"""The Kusto of the alert rules and the workbook infra/ deploys asks for what the app really sends to
Application Insights: checked as the docs' queries are (test_kusto_queries.py: the app's telemetry
runs for real on every documented event example against a loopback ingestion endpoint), plus the
dimension values the rules filter on and the columns their dimensions and measure name. Each check
is shown to name a deliberately broken copy of a real query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docs.infra_queries import alert_rules, column_problems, infra_queries, value_problems, workbook_items
from tests.docs.kusto import problems
from tests.docs.telemetry_capture import Emitted, capture


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    return capture()


def test_infra_has_every_alert_and_workbook_query() -> None:
    assert [rule.key for rule in alert_rules()] == [
        "run-failed-vms",
        "events-undelivered",
        "gc-findings",
        "gc-resume-failed",
        "snapshot-lag",
    ]
    assert [item["name"] for item in workbook_items()] == ["runs", "vm-timelines", "snapshot-lag", "failures"]


@pytest.mark.parametrize("query", infra_queries(), ids=lambda query: query.source)
def test_each_infra_query_asks_only_for_what_is_emitted(query, emitted: Emitted) -> None:
    assert problems(query.text, emitted) == []
    assert value_problems(query.text, emitted) == []


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.key)
def test_each_rule_splits_and_measures_by_columns_its_query_outputs(rule) -> None:
    assert column_problems(rule) == []


def _rule(key: str):
    (found,) = [rule for rule in alert_rules() if rule.key == key]
    return found


def _workbook_query(name: str) -> str:
    (item,) = [item for item in workbook_items() if item["name"] == name]
    return str(item["content"]["query"])


@pytest.mark.parametrize(
    ("source", "wrong", "right", "expected"),
    [
        ("run-failed-vms", "customDimensions.outcome", "customDimensions.result", "customDimensions.result"),
        ("snapshot-lag", ".SnapshotCompleted", ".SnapshotDone", "'.SnapshotDone'"),
        ("events-undelivered", "customDimensions.eventType", "customDimensions.type", "customDimensions.type"),
        ("gc-findings", "customDimensions.finding", "customDimensions.errorCode", "customDimensions.errorCode"),
        ("workbook:vm-timelines", "snapshotCompletedAt", "snapshotCompletedTime", "snapshotCompletedTime"),
        ("workbook:runs", "customEvents", "customMetrics", "'.ChainStarted'"),
        ("workbook:failures", "customDimensions.phase", "customDimensions.failedPhase", "failedPhase"),
    ],
)
def test_a_broken_copy_of_a_real_query_is_named(source: str, wrong: str, right: str, expected: str, emitted) -> None:
    text = _workbook_query(source.split(":", 1)[1]) if source.startswith("workbook:") else _rule(source).query
    assert wrong in text
    assert problems(text, emitted) == []
    found = problems(text.replace(wrong, right), emitted)
    assert any(expected in problem for problem in found), found


def test_a_misspelt_dimension_value_is_named(emitted: Emitted) -> None:
    text = _rule("run-failed-vms").query
    assert value_problems(text, emitted) == []
    found = value_problems(text.replace('"completedWithFailures"', '"completedWithFailure"'), emitted)
    assert found == ["customDimensions.outcome is never 'completedWithFailure' in what the app emits"]
    # =~ compares without case, as Kusto does
    assert value_problems(text.replace('== "completedWithFailures"', '=~ "COMPLETEDWITHFAILURES"'), emitted) == []


def test_a_dimension_the_query_does_not_output_is_named() -> None:
    rule = _rule("run-failed-vms")
    broken = type(rule)(rule.key, rule.query.replace("runId = ", "run = "), rule.dimensions, rule.measure, rule.raw)
    assert column_problems(broken) == ["rule run-failed-vms: column 'runId' is not produced by its query"]
    lag = _rule("snapshot-lag")
    assert lag.measure == "lagMinutes"
    broken = type(lag)(lag.key, lag.query.replace("lagMinutes =", "lag ="), lag.dimensions, lag.measure, lag.raw)
    assert column_problems(broken) == ["rule snapshot-lag: column 'lagMinutes' is not produced by its query"]


def test_the_run_counts_reach_kusto_as_the_json_of_the_events_counts(emitted: Emitted) -> None:
    """The runs panel and the failed-VMs alert read ChainCompleted's counts with parse_json."""
    example = json.loads((Path(__file__).resolve().parents[2] / "docs/events/ChainCompleted.json").read_text())
    (row,) = [row for row in emitted.table("customEvents") if row.name == "BackupChain.ChainCompleted"]
    (counts,) = [value for key, value in row.values if key == "counts"]
    assert json.loads(counts) == example["data"]["counts"] == {"failed": 1, "completed": 5}


def test_queries_inside_workbook_groups_are_found(tmp_path: Path) -> None:
    """A group (type 12) edited in the portal nests its items: their queries are checked too."""
    query = {"type": 3, "name": "inner", "content": {"query": "customEvents"}}
    group = {"type": 12, "name": "group", "content": {"version": "NotebookGroup/1.0", "items": [query]}}
    document = tmp_path / "w.json"
    document.write_text(json.dumps({"version": "Notebook/1.0", "items": [{"type": 1, "content": {}}, group]}))
    assert [item["name"] for item in workbook_items(document)] == ["inner"]


def test_the_vm_timeline_panel_uses_azures_trigger_and_job_end_times(emitted: Emitted) -> None:
    """Waiting ends when the backup was triggered and transfer when Azure's job ended, as the events'
    data say (triggeredAt, jobEndedAt), not when the app got round to publishing the event: a job
    watcher sees a job's end only at its next read, so eventTime overstates the transfer."""
    query = _workbook_query("vm-timelines")
    assert "todatetime(customDimensions.triggeredAt)" in query and "todatetime(customDimensions.jobEndedAt)" in query
    examples = Path(__file__).resolve().parents[2] / "docs" / "events"
    for kind, key in (("BackupTriggered", "triggeredAt"), ("BackupCompleted", "jobEndedAt")):
        example = json.loads((examples / f"{kind}.json").read_text())
        (row,) = [row for row in emitted.table("customEvents") if row.name == f"BackupChain.{kind}"]
        assert (key, example["data"][key]) in row.values, kind
