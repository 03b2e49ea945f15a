"""The chain configuration: every error names the field path and says how to fix it."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_chain.config import (
    CONFIG_JSON_SETTING,
    CONFIG_SETTING,
    MAX_CONFIG_BYTES,
    ConfigError,
    ConfigProblem,
    config_problems,
    load_config,
    parse_config,
    parse_config_text,
)
from tests.support.resource_ids import OTHER_SUB, vault, vm

VALID: dict[str, Any] = {
    "eventTypePrefix": "BackupChain.",
    "chains": [
        {
            "name": "nightly-etl",
            "upstream": {
                "eventType": "Contoso.Etl.JobFinished",
                "subject": "/jobs/nightly-etl",
                "timeout": "PT6H",
                "onFailure": "skip",
            },
            "window": "0 0 1 * * *",
            "targets": [{"vaultId": vault(), "vms": [vm("app01"), vm("app02")]}],
            "retainDays": 30,
            "maxParallel": 10,
            "monitorTransfer": True,
        }
    ],
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """VALID with the dotted ``path`` (``chains.0.upstream.timeout``) set to ``value``."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


def test_the_documented_example_is_valid() -> None:
    config = parse_config(VALID)
    chain = config.chain("NIGHTLY-ETL")
    assert chain is not None
    assert chain.upstream is not None and chain.upstream.timeout == timedelta(hours=6)
    assert chain.vm_ids() == [(vault(), vm("app01")), (vault(), vm("app02"))]
    assert chain.vault_of(vm("APP01").upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")) == vault()
    assert chain.vault_of(vm("app09")) is None


# (what is wrong, the change, the field path the error must start with, words of the fix)
BAD: list[tuple[str, Any, str, str]] = [
    ("unknown top-level field", {**VALID, "chainz": []}, "chainz:", "spelling"),
    ("unknown chain field", with_change("chains.0.retain_days", 5), "chains[0].retain_days:", "spelling"),
    ("timeout in go syntax", with_change("chains.0.upstream.timeout", "6h"), "chains[0].upstream.timeout:", "PT6H"),
    ("timeout not a string", with_change("chains.0.upstream.timeout", 3600), "chains[0].upstream.timeout:", "PT6H"),
    ("zero timeout", with_change("chains.0.upstream.timeout", "PT0S"), "chains[0].upstream.timeout:", "positive"),
    ("months timeout", with_change("chains.0.upstream.timeout", "P1M"), "chains[0].upstream.timeout:", "PT6H"),
    ("timeout over 7 days", with_change("chains.0.upstream.timeout", "P8D"), "chains[0].upstream.timeout:", "P7D"),
    ("five-field cron", with_change("chains.0.window", "0 1 * * *"), "chains[0].window:", "six-field"),
    ("nonsense cron", with_change("chains.0.window", "0 0 25 * * *"), "chains[0].window:", "0 0 1 * * *"),
    ("window on 31 February", with_change("chains.0.window", "0 0 1 31 2 *"), "chains[0].window:", "never fires"),
    ("window on 31 April", with_change("chains.0.window", "0 0 1 31 4 *"), "chains[0].window:", "never fires"),
    ("bad onFailure", with_change("chains.0.upstream.onFailure", "retry"), "chains[0].upstream.onFailure:", "skip"),
    ("bad chain name", with_change("chains.0.name", "nightly etl"), "chains[0].name:", "match pattern"),
    (
        "bad vault id",
        with_change("chains.0.targets.0.vaultId", "/subscriptions/x/vaults/v1"),
        "chains[0].targets[0].vaultId:",
        "/subscriptions/<guid>/resourceGroups/<rg>",
    ),
    (
        "vault id of a VM",
        with_change("chains.0.targets.0.vaultId", vm("app01")),
        "chains[0].targets[0].vaultId:",
        "Microsoft.RecoveryServices/vaults/<name>",
    ),
    ("bad VM id", with_change("chains.0.targets.0.vms.1", "app02"), "chains[0].targets[0].vms:", "vms[1]"),
    (
        "VM name Azure forbids",
        with_change("chains.0.targets.0.vms.1", vm("app;02")),
        "chains[0].targets[0].vms:",
        "virtualMachines/<name>",
    ),
    (
        "duplicate VM",
        with_change("chains.0.targets.0.vms", [vm("app01"), vm("APP01")]),
        "chains[0].targets[0].vms:",
        "list each VM once",
    ),
    ("no VMs", with_change("chains.0.targets.0.vms", []), "chains[0].targets[0].vms:", "at least 1"),
    (
        "VM of another subscription",
        with_change("chains.0.targets.0.vms.1", vm("app02", OTHER_SUB)),
        "chains[0].targets[0]:",
        "same subscription",
    ),
    ("window without upstream", with_change("chains.0.upstream", None), "chains[0]:", "add an 'upstream'"),
    (
        "VM in two targets",
        with_change(
            "chains.0.targets",
            [
                {"vaultId": vault("v1"), "vms": [vm("app01")]},
                {"vaultId": vault("v2"), "vms": [vm("App01")]},
            ],
        ),
        "chains[0]:",
        "keep it in one target",
    ),
    (
        "duplicate chain names",
        {**VALID, "chains": [VALID["chains"][0], {**VALID["chains"][0], "name": "Nightly-ETL"}]},
        "chains:",
        "rename one",
    ),
    ("gc VM in no chain", {**VALID, "gc": {"vms": [vm("app01"), vm("stranger")]}}, "gc.vms[1]:", "is in no chain"),
    ("no chains", {**VALID, "chains": []}, "chains:", "at least 1"),
    ("missing targets", {"chains": [{"name": "a"}]}, "chains[0].targets:", "required"),
    ("wrong type", with_change("chains.0.maxParallel", "many"), "chains[0].maxParallel:", "integer"),
    ("parallelism out of range", with_change("chains.0.maxParallel", 0), "chains[0].maxParallel:", "greater"),
    (
        "snapshot window reversed",
        with_change("chains.0.snapshotMinutes", [15, 5]),
        "chains[0].snapshotMinutes:",
        "[5, 15]",
    ),
    ("bad prefix", {**VALID, "eventTypePrefix": "Backup Chain"}, "eventTypePrefix:", "match pattern"),
    ("not an object", [VALID], "(top level):", "dictionary"),
]


@pytest.mark.parametrize(("data", "path", "fix"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_errors_name_the_field_and_the_fix(data: Any, path: str, fix: str) -> None:
    message = error_of(data).removeprefix("configuration: ")
    assert message.startswith(path), message
    assert fix in message, message


def test_every_problem_is_reported_at_once() -> None:
    data = with_change("chains.0.upstream.timeout", "6h")
    data["chains"][0]["window"] = "bad"
    data["chains"][0]["retainDays"] = 0
    message = error_of(data)
    for path in ("chains[0].upstream.timeout", "chains[0].window", "chains[0].retainDays"):
        assert path in message


def test_a_window_that_fires_only_in_leap_years_is_valid() -> None:
    config = parse_config(with_change("chains.0.window", "0 0 1 29 2 *"))
    assert config.chains[0].window == "0 0 1 29 2 *"


def test_checks_on_a_default_standing_in_for_a_bad_field_are_not_reported() -> None:
    """A bad field is set aside to reveal the checks behind it; a check that then judges the
    default in its place (no upstream, no policy, the default backoff) reports nothing true."""
    data = with_change("chains.0.upstream", "Contoso.Etl")  # a string, not an object; window set
    data["gc"] = {"mode": "weekly-policy", "remediate": True, "policy": 5, "vms": [vm("stranger")]}
    data["delivery"] = {"firstBackoff": "PT20M", "maxBackoff": "soon"}
    problems = config_problems(data)
    assert [p.path for p in problems] == ["chains[0].upstream", "gc.policy", "delivery.maxBackoff", "gc.vms[0]"]
    assert "valid dictionary" in problems[0].message
    in_no_chain = f"{vm('stranger')} is in no chain; GC covers VMs that chains back up"
    assert problems[3] == ConfigProblem("gc.vms[0]", in_no_chain)
    # the checks themselves still report what is really wrong
    data = with_change("chains.0.upstream", None)
    data["gc"] = {"mode": "weekly-policy", "remediate": True}
    data["delivery"] = {"firstBackoff": "PT20M", "maxBackoff": "PT10M"}
    assert [p.path for p in config_problems(data)] == ["chains[0]", "gc", "delivery"]


def test_ids_are_normalized() -> None:
    data = with_change("chains.0.targets.0.vms", [vm("app01").replace("resourceGroups", "resourcegroups")])
    data["chains"][0]["targets"][0]["vaultId"] = vault().upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    config = parse_config(data)
    target = config.chains[0].targets[0]
    assert target.vms == [vm("app01")]
    assert "/providers/Microsoft.RecoveryServices/vaults/" in target.vaultId


def test_text_that_is_not_json_says_where() -> None:
    with pytest.raises(ConfigError, match=r"chains.json: not valid JSON \(line 2, column"):
        parse_config_text('{"chains": [\n  oops]}', "chains.json")


def test_deeply_nested_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config_text("[" * 100_000, "chains.json")


def test_oversized_file_is_refused_before_parsing() -> None:
    text = json.dumps({**VALID, "padding": "x" * MAX_CONFIG_BYTES})
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        parse_config_text(text, "chains.json")


def test_load_from_json_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CONFIG_SETTING, raising=False)
    monkeypatch.setenv(CONFIG_JSON_SETTING, json.dumps(VALID))
    assert load_config(tmp_path).chains[0].name == "nightly-etl"
    monkeypatch.setenv(CONFIG_JSON_SETTING, "{")
    with pytest.raises(ConfigError, match=f"^{CONFIG_JSON_SETTING}: not valid JSON"):
        load_config(tmp_path)


def test_file_and_json_settings_are_mutually_exclusive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "chains.json").write_text(json.dumps(VALID))
    monkeypatch.setenv(CONFIG_JSON_SETTING, json.dumps(VALID))
    monkeypatch.setenv(CONFIG_SETTING, "chains.json")
    with pytest.raises(
        ConfigError, match=f"^both {CONFIG_SETTING} \\(chains.json\\) and {CONFIG_JSON_SETTING} are set"
    ):
        load_config(tmp_path)
    monkeypatch.setenv(CONFIG_JSON_SETTING, "")  # an empty setting is no setting (as an unset one)
    assert load_config(tmp_path).chains[0].name == "nightly-etl"


def test_load_from_file_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CONFIG_JSON_SETTING, raising=False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.json").write_text(json.dumps(VALID))
    monkeypatch.setenv(CONFIG_SETTING, "conf/mine.json")  # relative to the app directory
    assert load_config(tmp_path).chains[0].name == "nightly-etl"
    monkeypatch.setenv(CONFIG_SETTING, str(tmp_path / "conf" / "mine.json"))
    assert load_config(Path("/nonexistent")).chains[0].name == "nightly-etl"
    (tmp_path / "conf" / "mine.json").write_text(json.dumps(with_change("chains.0.upstream.timeout", "6h")))
    with pytest.raises(ConfigError, match=r"^mine.json: chains\[0\].upstream.timeout"):
        load_config(tmp_path)


def test_load_default_file_beside_the_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CONFIG_JSON_SETTING, raising=False)
    monkeypatch.delenv(CONFIG_SETTING, raising=False)
    with pytest.raises(ConfigError, match=f"^{CONFIG_SETTING}: cannot read .*chains.json.*BACKUPCHAIN_CONFIG_JSON"):
        load_config(tmp_path)
    (tmp_path / "chains.json").write_text(json.dumps(VALID))
    assert load_config(tmp_path).chains[0].name == "nightly-etl"


# No wall-clock deadlines or slow-generation failures: CI machines vary.
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["name", "upstream", "window", "targets", "retainDays", "x"]), _json))
def test_arbitrary_chain_entries_fail_only_with_config_error(chain: dict[str, Any]) -> None:
    try:
        parse_config({"chains": [chain]})
    except ConfigError as err:
        assert str(err).startswith("configuration: ")


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_fails_only_with_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config_text(text)
