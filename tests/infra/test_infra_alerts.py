"""The alert rules and the workbook as infra/ deploys them (parsed Bicep): each rule's schedule,
severity, statefulness and target, the action groups they notify, the parameters main.bicep takes
for them, and the workbook's link to the component. What their Kusto asks for is checked in
tests/docs/test_infra_queries.py; the identity's role in test_infra_roles.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.infra.test_infra_roles import unwrap

INFRA = Path(__file__).resolve().parents[2] / "infra"
_DURATION = re.compile(r"^PT(\d+)M$")


def _minutes(duration: str) -> int:
    match = _DURATION.match(duration)
    assert match, f"{duration!r} is not a PT<n>M duration"
    return int(match.group(1))


def _accessor(operand_1: str, operand_2: str) -> dict[str, Any]:
    return {"operator": {"type": "property_accessor", "operands": {"operand_1": operand_1, "operand_2": operand_2}}}


def _rules(bicep: dict) -> list[dict[str, Any]]:
    return list(bicep["modules/alerts.bicep"]["variables"]["rules"]["value"])


def documented_rules() -> dict[str, tuple[int, int, int]]:
    """docs/operations.md's alert table: rule -> (severity, every, window) as it documents them."""
    text = (INFRA.parent / "docs" / "operations.md").read_text()
    table = text[text.index("| rule (`alert-<token>-…`) |") :].split("\n\n", 1)[0]
    found = {}
    for row in table.splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        severity = re.match(r"(\d) ", cells[2])
        schedule = re.match(r"(\d+) / (\d+) min$", cells[3])
        assert severity and schedule, row
        found[cells[0].strip("`")] = (int(severity.group(1)), int(schedule.group(1)), int(schedule.group(2)))
    return found


def test_each_rule_is_scheduled_and_graded_as_documented(bicep: dict) -> None:
    deployed = {}
    for rule in _rules(bicep):
        frequency, window = _minutes(rule["frequency"]), _minutes(rule["window"])
        # Every 5 to 15 min; the window overlaps the next evaluations (ingestion delay) and the
        # stateful alert keeps one occurrence from notifying twice.
        assert frequency in (5, 10, 15), rule["key"]
        assert window == 3 * frequency, rule["key"]
        assert rule["severity"] in range(5), rule["key"]
        assert rule["dimensions"], f"{rule['key']}: split by the dimensions naming the occurrence"
        for dimension in rule["dimensions"]:
            assert dimension["operator"] == "Include" and dimension["values"] == "everyValue"
        deployed[rule["key"]] = (rule["severity"], frequency, window)
    assert bicep["modules/alerts.bicep"]["variables"]["everyValue"]["value"] == ["*"]
    assert deployed == documented_rules()
    assert len(deployed) == 5


def test_count_rules_fire_on_any_row_and_the_lag_rule_on_its_threshold(bicep: dict) -> None:
    for rule in _rules(bicep):
        if rule["key"] == "snapshot-lag":
            assert (rule["aggregation"], rule["measure"]) == ("Maximum", "lagMinutes")
            assert rule["threshold"] == "snapshotLagThresholdMinutes"
        else:
            assert (rule["aggregation"], rule["measure"], rule["threshold"]) == ("Count", "", 0), rule["key"]
    parameter = bicep["modules/alerts.bicep"]["parameters"]["snapshotLagThresholdMinutes"]
    assert parameter["default"] == 15
    assert bicep["main.bicep"]["parameters"]["snapshotLagThresholdMinutes"]["default"] == 15


def test_the_rules_query_the_component_statefully_and_notify_the_action_groups(bicep: dict) -> None:
    parsed = bicep["modules/alerts.bicep"]
    body, condition, loop = unwrap(parsed["resources"]["alertRules"]["config"])
    assert condition is None and loop == {"type": "array", "detail": {"item_name": "rule", "array_name": "rules"}}
    assert parsed["resources"]["alertRules"]["type"] == "Microsoft.Insights/scheduledQueryRules"
    assert parsed["resources"]["alertRules"]["api_version"] == "2023-12-01"
    assert body["kind"] == "LogAlert"
    properties = body["properties"]
    assert properties["scopes"] == [_accessor("applicationInsights", "id")]
    assert properties["autoMitigate"] is True and properties["enabled"] is True
    assert properties["actions"] == {"actionGroups": "actionGroupIds"}
    (condition_body,) = properties["criteria"]["allOf"]
    assert condition_body["operator"] == "GreaterThan"
    assert condition_body["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
    # the operator's action group when named, and the one created for alertEmails when given
    no_emails = {"function": {"type": "empty", "parameters": {"item_to_test": "alertEmails"}}}
    assert parsed["variables"]["createActionGroup"]["value"] == {
        "operator": {"type": "not", "operands": {"bool_value": no_emails}}
    }
    arguments = parsed["variables"]["actionGroupIds"]["value"]["function"]["parameters"]
    assert arguments["arg_1"]["operator"]["operands"]["false_value"] == ["actionGroupId"]
    assert arguments["arg_2"]["operator"]["operands"] == {
        "condition": "createActionGroup",
        "true_value": [_accessor("actionGroup", "id")],
        "false_value": [],
    }
    group, group_condition, _ = unwrap(parsed["resources"]["actionGroup"]["config"])
    assert group_condition == "createActionGroup"
    assert group["location"] == "Global"
    assert len(group["properties"]["groupShortName"]) <= 12  # actionGroups_API.json: maxLength 12


def test_main_wires_alerts_and_workbook_to_the_component(bicep: dict) -> None:
    modules = bicep["main.bicep"]["modules"]
    component = {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "monitoring", "operand_2": _accessor("outputs", "applicationInsightsName")},
        }
    }
    alerts, condition, _ = unwrap(modules["alerts"]["config"])
    assert condition == "alertsEnabled"
    assert alerts["params"]["applicationInsightsName"] == component
    assert alerts["params"]["actionGroupId"] == "alertActionGroupId"
    assert alerts["params"]["alertEmails"] == "alertEmails"
    workbook_module, workbook_condition, _ = unwrap(modules["workbook"]["config"])
    assert workbook_condition is None
    assert workbook_module["params"]["applicationInsightsName"] == component
    declared = bicep["main.bicep"]["parameters"]
    assert declared["alertsEnabled"]["default"] is True
    assert declared["alertActionGroupId"]["default"] == ""
    assert declared["alertEmails"]["default"] == []
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert {"alertsEnabled", "alertActionGroupId", "alertEmails", "snapshotLagThresholdMinutes"} <= set(values)


def test_the_workbook_is_a_shared_workbook_of_the_component(bicep: dict) -> None:
    parsed = bicep["modules/workbook.bicep"]
    workbook = parsed["resources"]["workbook"]
    assert (workbook["type"], workbook["api_version"]) == ("Microsoft.Insights/workbooks", "2023-06-01")
    body = workbook["config"]
    assert body["kind"] == "shared"
    assert body["properties"]["sourceId"] == _accessor("applicationInsights", "id")
    assert body["properties"]["category"] == "workbook"
    document = json.loads((INFRA / "workbook" / "backup-chain.workbook.json").read_text())
    assert body["properties"]["version"] == document["version"] == "Notebook/1.0"
    parameters = {p["name"] for item in document["items"] if item["type"] == 9 for p in item["content"]["parameters"]}
    for item in document["items"]:
        if item["type"] == 3:
            content = item["content"]
            assert content["resourceType"] == "microsoft.insights/components", item["name"]
            assert content["timeContextFromParameter"] in parameters, item["name"]


def test_no_rule_fires_one_alert_per_vm(bicep: dict) -> None:
    """A weekly GC check over a fleet can flag hundreds of VMs at once; one alert per VM would be
    hundreds of e-mails, past the action group's limit of 100 e-mails an hour per address
    (learn.microsoft.com/azure/azure-monitor/alerts/alerts-rate-limiting), so most would be
    dropped. The rules split by what bounds the count (finding, error code, run); the VMs are
    in GET /api/gc and the query's rows."""
    for rule in _rules(bicep):
        assert "vmId" not in [d["name"] for d in rule["dimensions"]], rule["key"]
