"""The Kusto queries of the docs, and what each one relies on: the table it reads, the event or
metric names and message texts it filters on, the customDimensions keys it reads. ``problems``
checks those against the rows the app really emits (telemetry_capture), and queries over the
Durable extension's own traces against the fields Microsoft documents for them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from backup_chain.ids import chain_instance_id, gc_manual_instance_id, scheduler_instance_id, vm_instance_id
from tests.docs.telemetry_capture import Emitted, Row

REPO_ROOT = Path(__file__).resolve().parents[2]
DURABLE_CATEGORY = "Host.Triggers.DurableTask"
# The Durable extension's tracking events (traces, category Host.Triggers.DurableTask): their
# structured-log fields reach customDimensions prefixed prop__ (learn.microsoft.com/azure/
# azure-functions/durable/durable-functions-diagnostics, "Tracking data"); the fields and states are
# those of azure-functions-durable-extension EndToEndTraceHelper.cs; Category and LogLevel are the
# host's own (learn.microsoft.com/azure/azure-functions/configure-monitoring).
DURABLE_DIMENSIONS = frozenset(
    {"Category", "LogLevel"}
    | {
        f"prop__{name}"
        for name in (
            "hubName",
            "appName",
            "slotName",
            "functionName",
            "functionType",
            "instanceId",
            "state",
            "runtimeStatus",
            "reason",
            "isReplay",
            "continuedAsNew",
            "input",
            "output",
            "details",
            "extensionVersion",
            "sequenceNumber",
            "taskEventId",
        )
    }
)
# The Functions host's copy of every log line of the worker: category Function.<name>.User, the
# message text, and no dimension of the app's (configure-monitoring, "Configure categories").
_WORKER_CATEGORY = re.compile(r'Category\)?\s*startswith\s*"Function\."')
HOST_DIMENSIONS = frozenset({"Category", "LogLevel"})
DURABLE_STATES = frozenset(
    {"Scheduled", "Started", "Awaited", "Listening", "Completed", "Failed", "Terminated", "Suspended", "Resumed"}
)
VM_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/app01"
# Instance ids the app gives its orchestrations (backup_chain.ids), for prefix filters on them.
INSTANCE_IDS = (
    chain_instance_id("nightly-etl", "r1"),
    vm_instance_id("r1", "nightly-etl", VM_ID),
    scheduler_instance_id("nightly-etl"),
    gc_manual_instance_id("check", datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)),
)

_STRING = r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\''
_OPERATOR = r"(==|=~|!=|!~|startswith_cs|startswith|endswith_cs|endswith|has_cs|has|contains_cs|contains|in~|in)"
_FILTER = re.compile(rf"(?<![\w.\]])(name|message)\s*{_OPERATOR}\s*(\([^)]*\)|{_STRING})")
_DIMENSION = re.compile(rf"customDimensions\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:{_STRING})\s*\])")
_TABLE = re.compile(r"^\s*(?:union\s+)?([A-Za-z_]\w*)\s*(?:\||$)", re.MULTILINE)
_STARTSWITH = re.compile(rf"\bstartswith(?:_cs)?\s*(?:{_STRING})")
# A comparison on a column named state/status (the query's own name for prop__state).
_STATE = re.compile(rf"\b\w*(?:state|State)\s*(?:==|in)\s*(\([^)]*\)|{_STRING})")
_BLOCK = re.compile(r"^```kusto\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Query:
    source: str  # "docs/operations.md:41"
    text: str


def doc_queries(root: Path = REPO_ROOT) -> list[Query]:
    """Every ```kusto block of the docs (docs/**/*.md and the READMEs)."""
    pages = sorted(root.glob("docs/**/*.md")) + sorted(root.glob("**/README.md"))
    found = []
    for page in pages:
        if any(part.startswith(".") for part in page.relative_to(root).parts):
            continue
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append(Query(f"{page.relative_to(root)}:{line}", match.group(1)))
    return found


def _strings(text: str) -> list[str]:
    return [a if a is not None else b for a, b in re.findall(_STRING, text)]


def _matches(operator: str, literal: str, value: str) -> bool:
    sensitive = operator.endswith("_cs") or operator in ("==", "in")
    a, b = (literal, value) if sensitive else (literal.lower(), value.lower())
    op = operator.removesuffix("_cs").removesuffix("~")
    if op in ("==", "=", "in"):
        return a == b
    if op == "startswith":
        return b.startswith(a)
    if op == "endswith":
        return b.endswith(a)
    # has: a whole term; contains: any substring (close enough for names and messages).
    if op == "has":
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(a)}(?![A-Za-z0-9])", b) is not None
    return a in b


def _code_of(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def problems(query: str, emitted: Emitted) -> list[str]:
    """What ``query`` relies on that the app (or the Durable extension) does not emit."""
    code = _code_of(query)
    tables = _TABLE.findall(code)
    if not tables:
        return ["no table: the query must start with the table it reads"]
    table = tables[0]
    if table == "traces" and re.search(rf'Category\s*==\s*"{re.escape(DURABLE_CATEGORY)}"', code):
        return _durable_problems(code)
    if table == "traces" and _WORKER_CATEGORY.search(code):
        return _worker_log_problems(code)
    rows = emitted.table(table)
    if not rows:
        return [f"table {table}: the app sends nothing there"]
    found: list[str] = []
    selected: list[Row] = []
    filtered = False
    for match in _FILTER.finditer(code):
        column, operator, operand = match.group(1), match.group(2), match.group(3)
        if operator in ("!=", "!~"):
            continue
        literals = _strings(operand)
        field = (lambda row: row.name) if column == "name" else (lambda row: row.message)
        filtered = filtered or column == "name"
        for literal in literals:
            hits = [row for row in rows if _matches(operator, literal, field(row))]
            if not hits:
                found.append(f"{table}: no {column} {operator} {literal!r} is emitted")
            selected.extend(hits)
    scope = selected if filtered else rows
    keys = frozenset().union(*(row.dimensions for row in scope)) if scope else frozenset()
    for match in _DIMENSION.finditer(code):
        key = match.group(1) or match.group(2) or match.group(3)
        if key not in keys:
            names = sorted({row.name for row in scope}) or [table]
            found.append(f"customDimensions.{key} is not emitted by {', '.join(names)}")
    return found


def _durable_problems(code: str) -> list[str]:
    found = [
        f"filter the Durable extension's traces on their prop__ fields, not on message text ({m.group(0)!r})"
        for m in _FILTER.finditer(code)
        if m.group(1) == "message"
    ]
    for match in _DIMENSION.finditer(code):
        key = match.group(1) or match.group(2) or match.group(3)
        if key not in DURABLE_DIMENSIONS:
            found.append(f"customDimensions.{key} is not a field of the Durable extension's tracking events")
    for match in _STARTSWITH.finditer(code):
        prefix = match.group(1) if match.group(1) is not None else match.group(2)
        if not any(instance.startswith(prefix) for instance in INSTANCE_IDS):
            found.append(f"no orchestration instance id of the app starts with {prefix!r}")
    for match in _STATE.finditer(code):
        for state in _strings(match.group(1)):
            if state not in DURABLE_STATES:
                found.append(f"{state!r} is not a state of the Durable extension's tracking events")
    return found


def _worker_log_problems(code: str) -> list[str]:
    found = [
        f"the worker's log lines in the host's traces: filter on severityLevel and Category, not on message text "
        f"the capture cannot check ({m.group(0)!r})"
        for m in _FILTER.finditer(code)
        if m.group(1) == "message"
    ]
    for match in _DIMENSION.finditer(code):
        key = match.group(1) or match.group(2) or match.group(3)
        if key not in HOST_DIMENSIONS:
            found.append(f"customDimensions.{key} is not on the host's copy of the worker's log lines")
    return found
