"""The JSON examples of docs/events/ against the publisher: each example is rebuilt with the real
event builder of backup_chain.events from its own data and must come out identical (envelope, id,
data keys, values and types); its data keys are the ones a call site of the app passes for that
type; and every event type the app publishes has one example."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backup_chain.events import EVENT_TYPES, chain_cloud_event, gc_cloud_event, vm_cloud_event, with_data_schema

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "events"
PREFIX = "BackupChain."  # the configuration's default eventTypePrefix, as the examples use
# Where the examples' app (source .../sites/backup-chain-local) serves its schemas in Azure.
SCHEMA_BASE = "https://backup-chain-local.azurewebsites.net/api/schemas/events"
PUBLISHERS = ("backup_chain", "orchestrators", "activities")  # where events are built
COMMON_KEYS = {"chain", "runId", "vmId", "vaultId"}  # in every event's data
BUILDER_KEYS = COMMON_KEYS | {"jobId", "finding"}  # set by the builders, not by the call sites


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def _rebuild(example: dict[str, Any]) -> dict[str, Any]:
    """The event the app's builder makes from the example's own type, time, source and data."""
    event_type = example["type"].removeprefix(PREFIX)
    data = dict(example["data"])
    chain, run_id, vm_id, vault_id = (data.pop(k) for k in ("chain", "runId", "vmId", "vaultId"))
    if chain is None:  # GC events: no chain; the GC run's instance id is the run id
        finding = data.pop("finding", None)
        return gc_cloud_event(
            prefix=PREFIX,
            source=example["source"],
            gc_run=run_id,
            event_type=event_type,
            time=example["time"],
            vm_id=vm_id,
            vault_id=vault_id,
            finding=finding,
            **data,
        )
    if vm_id is None:  # chain events: subject is the run
        return chain_cloud_event(
            prefix=PREFIX,
            chain=chain,
            run_id=run_id,
            source=example["source"],
            event_type=event_type,
            time=example["time"],
            **data,
        )
    spec = {"prefix": PREFIX, "chain": chain, "runId": run_id, "vmId": vm_id, "vaultId": vault_id}
    job_id = data.pop("jobId")
    return vm_cloud_event(spec, job_id, event_type, example["time"], **data)


def _types(value: Any) -> Any:
    """The JSON types of a value, recursively (so a string where the app sends a number differs)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_every_published_event_type_has_one_example() -> None:
    assert sorted(p.stem for p in _examples()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_example_is_what_the_publisher_builds(path: Path) -> None:
    example = json.loads(path.read_text(encoding="utf-8"))
    assert example["type"] == PREFIX + path.stem
    rebuilt = with_data_schema(_rebuild(example), SCHEMA_BASE)  # the publishing activity adds dataschema
    assert list(example) == list(rebuilt)  # envelope keys, in the publisher's order
    assert _types(example) == _types(rebuilt)
    assert example == rebuilt  # id (UUIDv5 of chain, run, scope, type, finding), source, subject, data


def test_events_page_links_every_example() -> None:
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    missing = [p.name for p in _examples() if f"(events/{p.name})" not in page]
    assert missing == []


@dataclass(frozen=True)
class CallSite:
    """Where the app builds an event: the data keys it passes, and whether it may pass more
    (a ``**`` spread whose keys the source does not spell out)."""

    where: str
    keys: frozenset[str]
    open: bool


def _dict_helpers(tree: ast.Module) -> dict[str, frozenset[str]]:
    """Module-level functions that return one dict literal (e.g. ``_failure_data``): their keys."""
    helpers = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            returns = [n.value for n in ast.walk(node) if isinstance(n, ast.Return)]
            if len(returns) == 1 and isinstance(returns[0], ast.Dict):
                keys = [k.value for k in returns[0].keys if isinstance(k, ast.Constant)]
                if len(keys) == len(returns[0].keys):
                    helpers[node.name] = frozenset(str(k) for k in keys)
    return helpers


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _call_sites() -> dict[str | None, list[CallSite]]:
    """Event call sites by literal type; ``None`` holds the sites whose type is computed (a GC
    finding's ``kind``). Wrappers that only forward ``**data`` are not call sites."""
    sites: dict[str | None, list[CallSite]] = {}
    for package in PUBLISHERS:
        for path in sorted((ROOT / package).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            helpers = _dict_helpers(tree)
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                if _call_name(call)[:1].isupper():
                    continue  # a class naming an event type (a GC ``Finding``), not an event built
                types = [a.value for a in call.args if isinstance(a, ast.Constant) and a.value in EVENT_TYPES]
                if not types and not (_call_name(call).endswith("event") and call.keywords):
                    continue
                spreads = [k.value for k in call.keywords if k.arg is None]
                if any(isinstance(s, ast.Name) for s in spreads) or any(k.arg == "event_type" for k in call.keywords):
                    continue  # a wrapper passing its own **data through, or the generic builder itself
                keys = {k.arg for k in call.keywords if k.arg is not None}
                open_ = False
                for spread in spreads:
                    helper = _call_name(spread) if isinstance(spread, ast.Call) else ""
                    if helper in helpers:
                        keys |= helpers[helper]
                    else:
                        open_ = True
                site = CallSite(f"{path.relative_to(ROOT)}:{call.lineno}", frozenset(keys - BUILDER_KEYS), open_)
                sites.setdefault(types[0] if types else None, []).append(site)
    return sites


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_example_data_keys_are_what_the_app_passes(path: Path) -> None:
    example = json.loads(path.read_text(encoding="utf-8"))
    keys = frozenset(example["data"]) - BUILDER_KEYS
    sites = _call_sites()
    candidates = sites.get(path.stem) or sites.get(None, [])
    matching = [s for s in candidates if s.keys == keys or (s.open and s.keys <= keys)]
    assert matching, f"{path.name} data keys {sorted(keys)}; the app passes: " + "; ".join(
        f"{s.where} {sorted(s.keys)}{' + more' if s.open else ''}" for s in candidates
    )


def test_events_page_lists_each_types_data_keys() -> None:
    """The page's "Data per type" table names exactly the keys of each type's example."""
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    table = page.split("## Data per type", 1)[1].split("\n\n", 2)[1]
    listed = {}
    for row in table.splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        listed[cells[0].strip("`")] = [key.strip("` ") for key in cells[1].split(",")]
    examples = {
        p.stem: [
            k for k in json.loads(p.read_text(encoding="utf-8"))["data"] if k not in BUILDER_KEYS - {"jobId", "finding"}
        ]
        for p in _examples()
    }
    assert listed == examples
