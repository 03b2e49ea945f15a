"""Targets that choose VMs at run start (``select``, ``exclude``): every bad selector is an error
naming its field, existing targets of listed VMs keep their rules and meaning, the pure
resolution (backup_chain/membership.py) combines the criteria as documented, and GC's settings
reach a chosen VM's backup only when GC covers it."""

from __future__ import annotations

from typing import Any

import pytest

from backup_chain.config import config_problems, parse_config
from backup_chain.membership import resolve_target, resource_graph_query
from backup_chain.runs import gc_for_vm, gc_settings
from tests.support.resource_ids import OTHER_SUB, vault, vm


def _config(*targets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"chains": [{"name": "fleet", "targets": list(targets)}], **extra}


def _problems(*targets: dict[str, Any]) -> list[str]:
    return [str(p) for p in config_problems(_config(*targets))]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({}, "chains[0].targets[0].vms: is required: list the VM resource ids, or give 'select'"),
        ({"select": {}}, "chains[0].targets[0].select: chooses nothing"),
        (
            {"select": {"protectedInVault": False, "policies": ["weekly"]}},
            "chains[0].targets[0].select: chooses nothing",
        ),
        (
            {"select": {"tags": {"env": "prod"}, "policies": ["weekly"]}},
            "select: 'policies' narrows 'protectedInVault'",
        ),
        ({"select": {"tags": {}}}, "chains[0].targets[0].select.tags: Dictionary should have at least 1 item"),
        ({"select": {"tags": {"a/b": "x"}}}, "select.tags: tag name 'a/b' is not an Azure tag name"),
        ({"select": {"tags": {"env": "x" * 257}}}, "select.tags: tag 'env': a value is at most 256 characters"),
        ({"select": {"tags": {"env": "a\n| take 1"}}}, "select.tags: tag 'env': names and values cannot hold control"),
        ({"select": {"tags": {"env": 3}}}, "chains[0].targets[0].select.tags.env"),
        ({"select": {"resourceGroups": ["ok", "bad rg"]}}, "select.resourceGroups: resourceGroups[1]: 'bad rg' is not"),
        ({"select": {"resourceGroups": []}}, "chains[0].targets[0].select.resourceGroups: List should have at least 1"),
        ({"select": {"protectedInVault": "yes"}}, "chains[0].targets[0].select.protectedInVault"),
        ({"select": {"vault": True, "tags": {"a": "b"}}}, "chains[0].targets[0].select.vault: is not a known setting"),
        (
            {"select": {"tags": {"env": "prod"}}, "exclude": ["nope"]},
            "exclude: exclude[0]: 'nope' is not a VM resource id",
        ),
        ({"vms": [vm("a")], "exclude": [vm("b")]}, "chains[0].targets[0]: 'exclude' removes VMs that 'select' chose"),
        (
            {"select": {"tags": {"env": "prod"}}, "exclude": [vm("a"), vm("A")]},
            "exclude: lists the same VM more than once",
        ),
    ],
)
def test_a_bad_selector_is_an_error_naming_its_field(target: dict[str, Any], expected: str) -> None:
    found = _problems({"vaultId": vault(), **target})
    assert found and expected in found[0], found  # the first problem names the bad field


def test_listed_vms_keep_their_rules_next_to_a_select() -> None:
    select = {"tags": {"env": "prod"}}
    assert _problems({"vaultId": vault(), "vms": [vm("a", sub=OTHER_SUB)], "select": select}) == [
        f"chains[0].targets[0]: VM {vm('a', sub=OTHER_SUB)} is in another subscription than vault {vault()}; Azure "
        "Backup protects VMs with a vault of the same subscription"
    ]
    found = _problems(
        {"vaultId": vault(), "vms": [vm("a")]}, {"vaultId": vault("v2"), "vms": [vm("a")], "select": select}
    )
    assert len(found) == 1 and "targets[1] lists VM" in found[0]


def test_a_target_of_listed_vms_means_what_it_meant() -> None:
    config = parse_config(_config({"vaultId": vault(), "vms": [vm("a"), vm("b")]}))
    chain = config.chains[0]
    assert chain.vm_ids() == [(vault(), vm("a")), (vault(), vm("b"))] and not chain.selects
    assert chain.targets[0].model_dump(mode="json") == {
        "vaultId": vault(),
        "vms": [vm("a"), vm("b")],
        "select": None,
        "exclude": None,
    }
    only_selects = parse_config(_config({"vaultId": vault("v9"), "select": {"protectedInVault": True}}))
    assert only_selects.vault_ids() == [vault("v9")] and only_selects.chains[0].vm_ids() == []


def test_the_query_escapes_quotes_and_matches_any_value_for_star_and_null() -> None:
    query = resource_graph_query({"resourceGroups": ["rg-a"], "tags": {"o'k": "a\\b", "any": "*", "none": None}})
    assert query.split("\n") == [
        "Resources",
        "| where type =~ 'microsoft.compute/virtualmachines'",
        "| where resourceGroup in~ ('rg-a')",
        "| where isnotnull(tags['any'])",
        "| where isnotnull(tags['none'])",
        "| where tags['o\\'k'] =~ 'a\\\\b'",
        "| project id",
        "| order by id asc",
    ]


def test_resolution_intersects_criteria_adds_listed_vms_and_reports_unprotected_ones() -> None:
    items = {vm("a").lower(): "weekly", vm("b").lower(): "daily", vm("x").lower(): None}
    target = {
        "vaultId": vault(),
        "vms": [vm("x"), vm("listed-loose")],
        "select": {"protectedInVault": True, "policies": ["WEEKLY"], "tags": {"env": "prod"}},
        "exclude": [vm("c"), vm("not-chosen")],
    }
    # Resource Graph found a, b (other policy), c (excluded) and tagged-loose (in no vault).
    found = resolve_target(target, [vm("a"), vm("b"), vm("c"), vm("tagged-loose")], items)
    assert found["members"] == [[vm("a"), "selected"], [vm("x"), "explicit"]]
    assert found["notProtected"] == [[vm("listed-loose"), "explicit"]]
    assert found["counts"] == {"explicit": 2, "selected": 1, "excluded": 0, "notProtected": 1, "members": 2}
    graph_only = resolve_target({**target, "select": {"tags": {"env": "prod"}}}, [vm("a"), vm("c"), vm("t")], items)
    assert graph_only["members"] == [[vm("a"), "selected"], [vm("x"), "explicit"]]
    assert [m[0] for m in graph_only["notProtected"]] == [vm("t"), vm("listed-loose")]
    assert graph_only["counts"]["excluded"] == 1


def test_gc_settings_reach_a_chosen_vm_only_when_gc_covers_it() -> None:
    target = {"vaultId": vault(), "vms": [vm("a")], "select": {"tags": {"env": "prod"}}}
    every = parse_config(_config(target, gc={"mode": "weekly-policy"}))
    settings = gc_settings(every, every.chains[0])
    assert gc_for_vm(settings, vm("chosen")) == {"mode": "weekly-policy", "policy": None, "overlap": "refuse"}
    assert every.gc_selections() == [
        {
            "vaultId": vault(),
            "vms": [vm("a")],
            "exclude": None,
            "select": {"tags": {"env": "prod"}, "protectedInVault": False, "policies": None, "resourceGroups": None},
        }
    ]
    listed = parse_config(_config(target, gc={"mode": "weekly-policy", "vms": [vm("a")]}))
    settings = gc_settings(listed, listed.chains[0])
    assert gc_for_vm(settings, vm("chosen")) is None  # gc.vms lists GC's VMs: a chosen one is not GC's
    assert gc_for_vm(settings, vm("a")) is not None and listed.gc_selections() == []


@pytest.mark.parametrize(
    "gc", [{"mode": "weekend-window", "policy": "gc-weekly"}, {"remediate": True, "policy": "gc-weekly"}]
)
def test_a_policy_selection_gc_resumes_with_another_policy_is_refused(gc: dict[str, Any]) -> None:
    # GC resumes protection with gc.policy: a VM chosen by another policy would leave the
    # selection at its first resume, and a weekend window would never resume it again.
    target = {"vaultId": vault(), "select": {"protectedInVault": True, "policies": ["daily"]}}
    problems = [str(p) for p in config_problems(_config(target, gc=gc))]
    assert problems == [
        "chains[0].targets[0].select.policies: GC resumes protection with policy 'gc-weekly', which this "
        "selection does not choose; add 'gc-weekly' to policies, or list GC's VMs in gc.vms"
    ]
    fine = {**target, "select": {"protectedInVault": True, "policies": ["daily", "GC-Weekly"]}}
    assert config_problems(_config(fine, gc=gc)) == []


def test_a_vm_gc_lists_gets_gc_settings_when_another_chain_chooses_it() -> None:
    # gc.vms lists a VM another chain names explicitly; a selecting chain that chooses it backs it
    # up under GC's settings too (in weekend-window its protection is stopped between windows).
    listed = {"name": "listed", "targets": [{"vaultId": vault(), "vms": [vm("a")]}]}
    chosen = {"name": "chosen", "targets": [{"vaultId": vault(), "select": {"tags": {"env": "prod"}}}]}
    gc = {"mode": "weekend-window", "policy": "weekly", "vms": [vm("a")]}
    cfg = parse_config({"chains": [listed, chosen], "gc": gc})
    settings = gc_settings(cfg, cfg.chains[1])
    assert gc_for_vm(settings, vm("a")) == {"mode": "weekend-window", "policy": "weekly", "overlap": "refuse"}
    assert gc_for_vm(settings, vm("other")) is None
