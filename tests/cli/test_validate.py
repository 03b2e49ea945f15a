"""``backup-chain validate`` and ``sync-parameters`` as the operator and the azd hooks run them (a
real subprocess, from the repository): every bad field of a configuration named, warnings for
risky settings, the configuration shipped in the package and the infra parameters agreeing with it
(the package, the infra parameters), and the parameters written from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backup_chain.config import ConfigError, parse_config
from backup_chain_cli.parameters import DEFAULT_CONFIG_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups"
VAULT = RG + "/rg-backup/providers/Microsoft.RecoveryServices/vaults/{}"
VM = RG + "/rg-app/providers/Microsoft.Compute/virtualMachines/{}"
PARAMS = "infra/main.parameters.json"


def cli(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m backup_chain_cli`` run in ``cwd`` (the app root, as azd runs its hooks)."""
    return subprocess.run(
        [sys.executable, "-m", "backup_chain_cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def validate_json(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    out = cli("--json", "validate", *args, cwd=cwd, env=env)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what validate reads: .funcignore, the parameters file and the configuration."""
    shutil.copy(REPO_ROOT / ".funcignore", tmp_path / ".funcignore")
    (tmp_path / "infra").mkdir()
    shutil.copy(REPO_ROOT / PARAMS, tmp_path / PARAMS)
    (tmp_path / "config").mkdir()
    shutil.copy(REPO_ROOT / DEFAULT_CONFIG_FILE, tmp_path / DEFAULT_CONFIG_FILE)
    return tmp_path


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def two_vault_config() -> dict[str, Any]:
    return {
        "chains": [
            {"name": "a", "targets": [{"vaultId": VAULT.format("vault-a"), "vms": [VM.format("a1"), VM.format("a2")]}]},
            {"name": "b", "targets": [{"vaultId": VAULT.format("vault-b"), "vms": [VM.format("b1")]}]},
        ],
        "gc": {"mode": "weekend-window", "policy": "weekly"},
    }


def broken_config() -> dict[str, Any]:
    """Eight mistakes in seven places; chains[0]'s window without upstream shows only once
    retainDays, the field pydantic stops that chain at, is set aside."""
    return {
        "chains": [
            {
                "name": "a",
                "window": "0 0 1 * * *",
                "retainDays": 0,
                "targets": [{"vaultId": VAULT.format("vault1"), "vms": [VM.format("a1")]}],
            },
            {
                "name": "b",
                "upstream": {"eventType": "X", "timeout": "6h"},
                "window": "every day",
                "targets": [{"vaultId": VAULT.format("vault1"), "vms": ["not-a-vm", VM.format("b1"), "also/bad"]}],
                "colour": "red",
            },
        ],
        "gc": {"mode": "weekend-window"},
    }


def test_the_repository_passes_with_its_parameters() -> None:
    out = cli("validate", DEFAULT_CONFIG_FILE, "--parameters", PARAMS)
    assert out.returncode == 0, out.stderr
    assert f"{DEFAULT_CONFIG_FILE}: valid; 1 chain(s), 1 VM(s), 1 vault(s)" in out.stdout


def test_every_bad_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(broken_config()))
    code, result = validate_json(str(path))
    assert code == 1 and result["valid"] is False
    fields = [p["field"] for p in result["problems"]]
    assert fields == [
        "chains[0].retainDays",
        "chains[1].upstream.timeout",
        "chains[1].window",
        "chains[1].targets[0].vms",
        "chains[1].colour",
        "gc",
        "chains[0]",  # revealed once retainDays is set aside
    ]
    messages = {p["field"]: p["message"] for p in result["problems"]}
    assert "vms[0]: 'not-a-vm' is not a VM resource id" in messages["chains[1].targets[0].vms"]
    assert "vms[2]: 'also/bad' is not a VM resource id" in messages["chains[1].targets[0].vms"]
    assert "has a 'window' but no 'upstream'" in messages["chains[0]"]
    assert "is not a known setting" in messages["chains[1].colour"]
    # as a table for people: each field on its own row
    out = cli("validate", str(path))
    assert out.returncode == 1
    for field in fields:
        assert field in out.stdout


def test_the_app_startup_message_is_unchanged() -> None:
    """The loader keeps raising one message (what the host logs at startup); the extra problems
    validate reveals ride on the error, not in its text."""
    with pytest.raises(ConfigError) as raised:
        parse_config(broken_config(), "chains.json")
    assert str(raised.value).startswith("chains.json: chains[0].retainDays: Input should be greater than or equal to 1")
    assert "chains[1].targets[0].vms: vms[0]: 'not-a-vm' is not a VM resource id" in str(raised.value)
    assert "no 'upstream'" not in str(raised.value)
    assert [p.path for p in raised.value.problems][-1] == "chains[0]"


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    out = cli("validate", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "missing.json: no such file" in out.stderr
    out = cli("validate", str(tmp_path))
    assert out.returncode == 2 and f"{tmp_path}: not a file" in out.stderr
    # a file the OS refuses to read: the command line's problem (exit 2) with the OS's reason, not the app's advice
    out = cli("validate", "/proc/self/mem")
    assert out.returncode == 2, out
    assert out.stderr.strip() == "error: /proc/self/mem: cannot read (Input/output error)", out.stderr
    (tmp_path / "c.json").write_text('{"chains": [')
    code, result = validate_json(str(tmp_path / "c.json"))
    assert code == 1 and "not valid JSON (line 1" in result["problems"][0]["message"]


def test_risky_settings_are_warnings_naming_the_field(tmp_path: Path) -> None:
    body: dict[str, Any] = {
        "chains": [
            {
                "name": "hourly",
                "upstream": {"eventType": "X"},
                "window": "0 0 * * * *",  # 24 firings a day, whatever day it is
                "targets": [{"vaultId": VAULT.format("vault1"), "vms": [VM.format("a1"), VM.format("a2")]}],
            },
            {"name": "by-hand", "targets": [{"vaultId": VAULT.format("vault1"), "vms": [VM.format("b1")]}]},
        ],
        "gc": {"mode": "weekly-policy", "enforce": False, "vms": [VM.format("a1")]},
    }
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(body))
    code, result = validate_json(str(path))
    assert code == 0 and result["valid"] is True
    warnings = {w["field"]: w["message"] for w in result["warnings"]}
    assert set(warnings) == {
        "chains[0].window",
        "gc.enforce",
        "chains[0].targets",
        "chains[1].targets",
        "chains[1].window",
    }
    assert "could start 24 on-demand backups of a VM in 24 hours" in warnings["chains[0].window"]
    assert (
        VM.format("a2") in warnings["chains[0].window"]
        and "CloudDosAbsoluteLimitReached" in warnings["chains[0].window"]
    )
    assert "1 VM(s) not in gc.vms" in warnings["chains[0].targets"] and VM.format("a2") in warnings["chains[0].targets"]
    assert "started through the API" in warnings["chains[1].window"]
    out = cli("validate", str(path))
    assert out.returncode == 0 and "warning: gc.enforce: false" in out.stderr
    # every second: the count stops at daily_limit.FIRINGS_CAP, so it is a floor, not exact
    body["chains"][1].update(upstream={"eventType": "Y"}, window="* * * * * *")
    path.write_text(json.dumps(body))
    _, result = validate_json(str(path))
    every_second = {w["field"]: w["message"] for w in result["warnings"]}["chains[1].window"]
    assert every_second.startswith(
        "could start at least 1000 on-demand backups of a VM in 24 hours (by-hand: at least 1000 window firings)"
    ), every_second
    del body["gc"]
    path.write_text(json.dumps(body))
    _, result = validate_json(str(path))
    assert "no gc section: GC enforcement is off" in {w["field"]: w["message"] for w in result["warnings"]}["gc"]


# --- the package and the infra parameters (validate --parameters) --------------------------------
def test_an_invalid_configuration_is_rejected_with_parameters(project: Path) -> None:
    _edit(project / DEFAULT_CONFIG_FILE, lambda c: c["chains"][0]["upstream"].update(timeout="6h"))
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    assert result["problems"][0]["field"] == "chains[0].upstream.timeout"
    assert result["problems"][0]["message"].startswith("'6h' is not an ISO 8601")


def test_an_unshipped_or_other_file_is_refused(project: Path) -> None:
    (project / ".funcignore").write_text((project / ".funcignore").read_text() + "config\n")
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    assert {
        "field": "parameters.chainConfigFile",
        "message": "config/chains.json is excluded from the deployment package by "
        ".funcignore: the app could not read it",
    } in result["problems"]
    shutil.copy(REPO_ROOT / ".funcignore", project / ".funcignore")
    _edit(project / PARAMS, lambda p: p["parameters"]["chainConfigFile"].update(value="config/other.json"))
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    assert [p["field"] for p in result["problems"]] == ["parameters.chainConfigFile"]
    assert "'config/other.json' is the file the app loads in Azure" in result["problems"][0]["message"]
    out = cli("validate", DEFAULT_CONFIG_FILE, "--parameters", "infra/nope.json", cwd=project)
    assert out.returncode == 2 and "infra/nope.json: cannot read" in out.stderr


def test_parameters_that_disagree_are_refused_and_sync_writes_them(project: Path) -> None:
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(two_vault_config()))

    def stale(params: dict[str, Any]) -> None:
        values = params["parameters"]
        values["vaultResourceIds"] = {"value": [VAULT.format("vault-a"), VAULT.format("vault-old")]}
        values["vmResourceIds"] = {"value": [VM.format("a1"), VM.format("gone")]}
        values["chainConfig"] = {"value": {"chains": []}}

    _edit(project / PARAMS, stale)
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    # each problem under the parameter it is about, not the file's name
    assert {p["field"] for p in result["problems"]} == {
        "parameters.vaultResourceIds",
        "parameters.gcMode",
        "parameters.vmResourceIds",
        "parameters.chainConfig",
    }
    messages = {(p["field"], p["message"].split(":")[0]) for p in result["problems"]}
    assert messages == {
        ("parameters.vaultResourceIds", f"lacks {VAULT.format('vault-b').lower()}, a vault of the configuration"),
        ("parameters.vaultResourceIds", f"lists {VAULT.format('vault-old').lower()}, which no chain uses"),
        ("parameters.gcMode", "is 'weekly-policy' but the configuration's gc.mode is 'weekend-window'"),
        ("parameters.vmResourceIds", f"lists {VM.format('gone')}, which no chain backs up"),
        ("parameters.chainConfig", "is no longer used"),
    }
    out = cli("validate", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert "backup-chain sync-parameters config/chains.json" in out.stdout
    # sync derives vaultResourceIds and gcMode; vmResourceIds and chainConfig stay the operator's call
    _edit(project / PARAMS, lambda p: [p["parameters"].pop(k) for k in ("vmResourceIds", "chainConfig")])
    out = cli("sync-parameters", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert out.returncode == 0, out.stderr
    params = json.loads((project / PARAMS).read_text())["parameters"]
    assert params["vaultResourceIds"]["value"] == [VAULT.format("vault-a"), VAULT.format("vault-b")]
    assert params["gcMode"]["value"] == "weekend-window"
    assert params["environmentName"]["value"] == "${AZURE_ENV_NAME}"  # the rest untouched
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 0, result["problems"]


def test_sync_refuses_an_invalid_configuration_and_changes_nothing(project: Path) -> None:
    before = (project / PARAMS).read_text()
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps({"chains": [{"name": "x"}]}))
    out = cli("sync-parameters", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert out.returncode == 1 and "chains[0].targets" in out.stdout
    assert (project / PARAMS).read_text() == before


def test_azd_placeholders_are_resolved_from_the_environment(project: Path) -> None:
    _edit(project / PARAMS, lambda p: p["parameters"]["gcMode"].update(value="${GC_MODE=weekly-policy}"))
    args = (DEFAULT_CONFIG_FILE, "--parameters", PARAMS)
    assert validate_json(*args, cwd=project)[0] == 0  # the default applies
    code, result = validate_json(*args, cwd=project, env={"GC_MODE": "weekend-window"})
    assert code == 1 and result["problems"][0] == {
        "field": "parameters.gcMode",
        "message": "is 'weekend-window' but the configuration's gc.mode is 'weekly-policy': the vault role would "
        "not match what GC does",
    }
    # an array parameter from an azd environment value (JSON text)
    _edit(project / PARAMS, lambda p: p["parameters"]["vaultResourceIds"].update(value="${VAULT_IDS}"))
    assert validate_json(*args, cwd=project, env={"VAULT_IDS": json.dumps([VAULT.format("vault-prod")])})[0] == 0
    code, result = validate_json(*args, cwd=project, env={"VAULT_IDS": json.dumps([VAULT.format("vault-other")])})
    assert code == 1 and result["problems"][0]["message"].startswith(f"lacks {VAULT.format('vault-prod').lower()}")


def test_a_5000_vm_configuration_passes_and_is_reported_as_too_big_for_a_variable(project: Path) -> None:
    from tests.chain.test_config_scale import big_config

    config = big_config(5000)
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(config))
    vault = config["chains"][0]["targets"][0]["vaultId"]
    _edit(
        project / PARAMS,
        lambda p: p["parameters"].update(vaultResourceIds={"value": [vault]}, vmResourceIds={"value": []}),
    )
    out = cli("validate", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert out.returncode == 0, out.stderr
    assert "1 chain(s), 5000 VM(s), 1 vault(s)" in out.stdout
    assert "would not fit the 128 KiB BACKUPCHAIN_CONFIG_JSON limit" in out.stdout


def test_too_many_vm_role_assignments_for_one_template_are_refused(project: Path) -> None:
    """vmResourceIds repeats VMs of the configuration; 1,000 of them would be 1,000 deployments."""
    from tests.chain.test_config_scale import big_config

    config = big_config(1000)
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(config))
    vms = config["chains"][0]["targets"][0]["vms"]

    def params(count: int) -> Any:
        return lambda p: p["parameters"].update(
            vaultResourceIds={"value": [config["chains"][0]["targets"][0]["vaultId"]]},
            vmResourceIds={"value": vms[:count]},
        )

    _edit(project / PARAMS, params(700))
    assert validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)[0] == 0
    _edit(project / PARAMS, params(1000))
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    assert "over ARM's 800 resources per template: leave vmResourceIds empty" in result["problems"][0]["message"]


def test_sync_names_a_missing_or_broken_parameters_file(project: Path) -> None:
    out = cli("sync-parameters", DEFAULT_CONFIG_FILE, "--parameters", "infra/none.json", cwd=project)
    assert out.returncode == 2 and "infra/none.json: cannot update (No such file or directory)" in out.stderr
    (project / PARAMS).write_text("{")
    out = cli("sync-parameters", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert out.returncode == 2 and f"{PARAMS}: not valid JSON (line 1" in out.stderr
    assert "Traceback" not in out.stderr and (project / PARAMS).read_text() == "{"


def test_an_unset_placeholder_is_named_as_such(project: Path) -> None:
    _edit(project / PARAMS, lambda p: p["parameters"]["gcMode"].update(value="${GCM}"))
    env = {k: v for k, v in os.environ.items() if k != "GCM"}
    out = subprocess.run(
        [sys.executable, "-m", "backup_chain_cli", "--json", "validate", DEFAULT_CONFIG_FILE, "--parameters", PARAMS],
        cwd=project,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["problems"] == [
        {
            "field": "parameters.gcMode",
            "message": "${GCM} is an unset azd placeholder: set GCM in the azd environment (azd env set) or give it "
            "a default (${GCM=...})",
        }
    ]
    assert validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project, env={"GCM": "weekly-policy"})[0] == 0
    _edit(project / PARAMS, lambda p: p["parameters"]["chainConfigFile"].update(value="${CONFIG_FILE}"))
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project, env={"GCM": "weekly-policy"})
    assert code == 1 and [p["field"] for p in result["problems"]] == ["parameters.chainConfigFile"]
    assert result["problems"][0]["message"].startswith("${CONFIG_FILE} is an unset azd placeholder")


def test_remediate_needs_gc_remediate_in_the_parameters_for_its_role(project: Path) -> None:
    """vault-role.bicep grants protectedItems/write (resume protection) for gcMode 'weekend-window'
    or gcRemediate true; remediate in weekly-policy mode needs the parameter, and sync writes it."""
    gc = {"mode": "weekly-policy", "remediate": True, "policy": "weekly"}
    _edit(project / DEFAULT_CONFIG_FILE, lambda c: c.update(gc=gc))
    assert validate_json(DEFAULT_CONFIG_FILE, cwd=project)[0] == 0  # the app itself accepts it
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 1
    (problem,) = result["problems"]
    assert problem["field"] == "parameters.gcRemediate"
    assert problem["message"].startswith("is False but the configuration's gc.remediate is True")
    out = cli("sync-parameters", DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert out.returncode == 0, out.stderr
    assert json.loads((project / PARAMS).read_text())["parameters"]["gcRemediate"] == {"value": True}
    code, result = validate_json(DEFAULT_CONFIG_FILE, "--parameters", PARAMS, cwd=project)
    assert code == 0, result["problems"]
