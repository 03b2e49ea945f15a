"""The Kusto queries infra/ deploys, read from where they are deployed from: the alert rules of
infra/modules/alerts.bicep (parsed with pycep, as tests/infra reads the Bicep) and the workbook
file infra/modules/workbook.bicep loads into serializedData. kusto.problems checks what each relies
on; the checks here add what an alert rule relies on beyond that: the values its filters compare
custom dimensions with, and the columns its dimensions and measure name."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

from tests.docs.kusto import Query
from tests.docs.telemetry_capture import Emitted

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
ALERTS = INFRA / "modules" / "alerts.bicep"
WORKBOOK_MODULE = INFRA / "modules" / "workbook.bicep"
_KEY = r"customDimensions\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([A-Za-z_]\w*)[\"']\s*\])"
# tostring(customDimensions.k) == "v" (or customDimensions.k =~ 'v').
_COMPARISON = re.compile(rf"(?:tostring\(\s*)?{_KEY}\s*\)?\s*(==|=~)\s*(?:\"([^\"]*)\"|'([^']*)')")


@dataclass(frozen=True)
class AlertRule:
    key: str
    query: str
    dimensions: tuple[str, ...]
    measure: str
    raw: dict[str, Any]


def _parse(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


def alert_rules(path: Path = ALERTS) -> list[AlertRule]:
    """The ``rules`` variable of alerts.bicep, one scheduledQueryRule each."""
    return [
        AlertRule(
            key=str(rule["key"]),
            query=str(rule["query"]),
            dimensions=tuple(str(d["name"]) for d in rule["dimensions"]),
            measure=str(rule["measure"]),
            raw=rule,
        )
        for rule in _parse(path)["variables"]["rules"]["value"]
    ]


def workbook_path(module: Path = WORKBOOK_MODULE) -> Path:
    """The file workbook.bicep loads (loadTextContent) as the workbook's serializedData."""
    workbook = _parse(module)["resources"]["workbook"]["config"]
    loaded = workbook["properties"]["serializedData"]["function"]
    assert loaded["type"] == "load_text_content", loaded
    return (module.parent / loaded["parameters"]["file_path"]).resolve()


def _query_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        content = item.get("content") or {}
        if item.get("type") == 3:
            found.append(item)
        found.extend(_query_items(content.get("items") or []))  # groups (type 12) nest items
    return found


def workbook_items(path: Path | None = None) -> list[dict[str, Any]]:
    """The workbook's query items (type 3), groups included."""
    document = json.loads((path or workbook_path()).read_text())
    return _query_items(document["items"])


def infra_queries() -> list[Query]:
    rules = [Query(f"{ALERTS.relative_to(REPO_ROOT).as_posix()}:{rule.key}", rule.query) for rule in alert_rules()]
    path = workbook_path()
    items = [
        Query(f"{path.relative_to(REPO_ROOT).as_posix()}:{item['name']}", item["content"]["query"])
        for item in workbook_items(path)
    ]
    return rules + items


def value_problems(query: str, emitted: Emitted) -> list[str]:
    """Each ``customDimensions.k == "v"`` of ``query`` must compare with a value the app emits
    for ``k`` (a misspelt outcome or finding makes a rule that never fires)."""
    code = "\n".join(line.split("//", 1)[0] for line in query.splitlines())
    emitted_values = {(key, value) for row in emitted.rows for key, value in row.values}
    found = []
    for match in _COMPARISON.finditer(code):
        key = match.group(1) or match.group(2)
        operator = match.group(3)
        value = match.group(4) if match.group(4) is not None else match.group(5)
        if operator == "=~":
            hit = any(k == key and v.lower() == value.lower() for k, v in emitted_values)
        else:
            hit = (key, value) in emitted_values
        if not hit:
            found.append(f"customDimensions.{key} is never {value!r} in what the app emits")
    return found


def column_problems(rule: AlertRule) -> list[str]:
    """The rule's dimensions and measure must be columns its query outputs (named ``col = ...``)."""
    names = list(rule.dimensions) + ([rule.measure] if rule.measure else [])
    return [
        f"rule {rule.key}: column {name!r} is not produced by its query"
        for name in names
        if not re.search(rf"(?<![\w.]){re.escape(name)}\s*=(?!=)", rule.query)
    ]
