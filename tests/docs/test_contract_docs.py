"""The local contracts are documented where operators look, and cannot drift from the code: every
admin route devhost and the emulators register is in their README's route table (and no route the
code lacks), and every key of the Recovery Services scenario and of the Event Grid config is in
the reference table of its object (and no key the models lack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.eventgrid.config import EmulatorConfig
from emulators.recoveryservices.scenario_schema import ScenarioModel
from tests.docs.contract_docs import (
    REPO_ROOT,
    documented_routes,
    registered_admin_routes,
    section,
    undocumented_keys,
)

EMULATORS = REPO_ROOT / "emulators" / "README.md"
DEVHOST = REPO_ROOT / "devhost" / "README.md"
ROUTE_DOCS = [
    ("emulators/recoveryservices", EMULATORS, "Recovery Services: admin API"),
    ("emulators/eventgrid", EMULATORS, "Event Grid: admin API and faults"),
    ("devhost", DEVHOST, "Admin API"),
]


@pytest.mark.parametrize(("package", "page", "heading"), ROUTE_DOCS, ids=[p for p, _, _ in ROUTE_DOCS])
def test_every_admin_route_is_documented_in_its_section(package: str, page: Path, heading: str) -> None:
    registered = registered_admin_routes(package)
    assert ("GET", "/admin/clock") in registered and ("POST", "/admin/clock/advance") in registered
    documented = documented_routes(section(page, heading))
    assert sorted(registered - documented) == [], "registered but not documented"
    assert sorted(documented - registered) == [], "documented but not registered"


def test_the_route_finder_reads_what_each_component_registers() -> None:
    assert registered_admin_routes("devhost") == {
        ("POST", "/admin/functions/{name}"),
        ("GET", "/admin/host/status"),
        ("GET", "/admin/clock"),
        ("POST", "/admin/clock/advance"),
    }
    assert ("POST", "/admin/jobs/{job}/advance") in registered_admin_routes("emulators/recoveryservices")
    assert ("POST", "/admin/faults") in registered_admin_routes("emulators/eventgrid")


def test_a_route_missing_from_the_docs_is_named() -> None:
    text = section(EMULATORS, "Recovery Services: admin API").replace("`POST /admin/jobs/{job}/advance`", "")
    missing = registered_admin_routes("emulators/recoveryservices") - documented_routes(text)
    assert missing == {("POST", "/admin/jobs/{job}/advance")}
    text = section(DEVHOST, "Admin API").replace("`GET /admin/host/status`", "`GET /admin/host/state`")
    assert registered_admin_routes("devhost") - documented_routes(text) == {("GET", "/admin/host/status")}
    assert documented_routes(text) - registered_admin_routes("devhost") == {("GET", "/admin/host/state")}


@pytest.mark.parametrize(
    ("model", "heading"),
    [(ScenarioModel, "Scenario reference"), (EmulatorConfig, "Config reference")],
    ids=["scenario", "eventgrid-config"],
)
def test_every_key_is_in_the_reference(model: type, heading: str) -> None:
    assert undocumented_keys(model, section(EMULATORS, heading)) == []


def test_a_key_missing_from_the_reference_is_named() -> None:
    text = section(EMULATORS, "Scenario reference")
    assert undocumented_keys(ScenarioModel, text.replace("| `snapshotCollected` |", "| `collected` |")) == [
        "vaults[].vms[].history[].snapshotCollected: not documented",
        "vaults[].vms[].history[].collected: documented but not a key",
        "vaults[].vms[].jobs[].snapshotCollected: not documented",
        "vaults[].vms[].jobs[].collected: documented but not a key",
    ]
    assert undocumented_keys(ScenarioModel, text.replace("#### `vaults[].vms[].faults`", "#### VM faults")) == [
        "vaults[].vms[].faults: no table of its keys"
    ]
    config = section(EMULATORS, "Config reference")
    assert undocumented_keys(EmulatorConfig, config.replace("| `isSubjectCaseSensitive` |", "| |")) == [
        "subscriptions[].filter.isSubjectCaseSensitive: not documented"
    ]
    faults = text.replace("| `fail5xxNext` |", "| |")
    assert undocumented_keys(ScenarioModel, faults) == [
        "faults.fail5xxNext: not documented",
        "faults.operations.{name}.fail5xxNext: not documented",
    ]
