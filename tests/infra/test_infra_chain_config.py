"""The chain configuration deploys as a file in the package and is checked before it deploys:
infra names the file the app loads, .funcignore ships it, the azd hooks run
``tools.chainconfig check``, which rejects an invalid configuration naming the field and
parameters (vaultResourceIds, gcMode, vmResourceIds) that disagree with it; ``sync`` derives them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pathspec
import pytest

from tools.chainconfig import DEFAULT_CONFIG_FILE, MAIN_MODULES, excluded_from_package

REPO_ROOT = Path(__file__).resolve().parents[2]
RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups"
VAULT = RG + "/rg-backup/providers/Microsoft.RecoveryServices/vaults/{}"
VM = RG + "/rg-app/providers/Microsoft.Compute/virtualMachines/{}"


def run_tool(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tools.chainconfig`` as the azd hook runs it (from the repository, on ``root``)."""
    return subprocess.run(
        [sys.executable, "-m", "tools.chainconfig", *args, "--root", str(root)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the check reads: .funcignore, the parameters file and the configuration."""
    shutil.copy(REPO_ROOT / ".funcignore", tmp_path / ".funcignore")
    (tmp_path / "infra").mkdir()
    shutil.copy(REPO_ROOT / "infra" / "main.parameters.json", tmp_path / "infra" / "main.parameters.json")
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


def test_infra_names_the_file_the_repository_ships(bicep: dict) -> None:
    main = bicep["main.bicep"]["parameters"]
    assert main["chainConfigFile"]["default"] == DEFAULT_CONFIG_FILE
    assert "chainConfig" not in main  # the JSON itself is no parameter (it became one 128 KiB variable)
    params = json.loads((REPO_ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert params["chainConfigFile"]["value"] == DEFAULT_CONFIG_FILE
    settings = {s["name"]: s["value"] for s in bicep["modules/functionapp.bicep"]["variables"]["baseSettings"]["value"]}
    assert "chainConfigFile" in str(settings["BACKUPCHAIN_CONFIG"])
    assert "BACKUPCHAIN_CONFIG_JSON" not in settings
    assert (REPO_ROOT / DEFAULT_CONFIG_FILE).is_file()
    assert not excluded_from_package(REPO_ROOT, DEFAULT_CONFIG_FILE)


def test_funcignore_matching_agrees_with_gitignore_semantics() -> None:
    """tools.chainconfig's .funcignore reading, against pathspec's gitignore implementation, on
    every file of the repository and on patterns the repository's .funcignore does not use yet."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files += ["backup_chain/__pycache__/x.pyc", ".venv/lib/x.py", "local.settings.json", "config/chains.json"]
    spec = pathspec.GitIgnoreSpec.from_lines((REPO_ROOT / ".funcignore").read_text().splitlines())
    differ = [f for f in files if excluded_from_package(REPO_ROOT, f) != spec.match_file(f)]
    assert not differ
    assert excluded_from_package(REPO_ROOT, "tests/chain/test_config.py")
    assert not excluded_from_package(REPO_ROOT, "function_app.py")


@pytest.mark.parametrize(
    "rules",
    [
        ["config"],
        ["config/"],
        ["/config/*.json"],
        ["**/chains.json"],
        ["*.json", "!config/chains.json"],
        ["conf?g/"],
        ["config/**"],
        ["/chains.json"],
    ],
)
def test_funcignore_patterns(tmp_path: Path, rules: list[str]) -> None:
    (tmp_path / ".funcignore").write_text("\n".join(rules) + "\n")
    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    for path in ("config/chains.json", "chains.json", "sub/config/chains.json", "host.json", "config"):
        assert excluded_from_package(tmp_path, path) == spec.match_file(path), (rules, path)


def test_the_repository_passes_the_check() -> None:
    out = run_tool(REPO_ROOT, "check")
    assert out.returncode == 0, out.stderr
    assert f"{DEFAULT_CONFIG_FILE}: valid; 1 chain(s), 1 VM(s), 1 vault(s)" in out.stdout


def test_azd_hooks_run_the_check_before_provision_and_deploy() -> None:
    text = (REPO_ROOT / "azure.yaml").read_text()
    for hook in ("preprovision:", "predeploy:"):
        section = text.split(hook, 1)[1].split("\n  post", 1)[0].split("\n  pre", 1)[0]
        assert section.count("-m tools.chainconfig check") == 2, hook  # posix and windows
        assert "continueOnError: false" in section


def test_an_invalid_configuration_is_rejected_naming_the_field(project: Path) -> None:
    _edit(project / DEFAULT_CONFIG_FILE, lambda c: c["chains"][0]["upstream"].update(timeout="6h"))
    out = run_tool(project, "check")
    assert out.returncode == 1
    assert (
        "chain configuration is invalid: chains.json: chains[0].upstream.timeout: '6h' is not an ISO 8601" in out.stderr
    )
    (project / DEFAULT_CONFIG_FILE).write_text('{"chains": [')
    out = run_tool(project, "check")
    assert out.returncode == 1 and "chains.json: not valid JSON" in out.stderr


def test_a_missing_or_unshipped_file_is_refused(project: Path) -> None:
    (project / ".funcignore").write_text((project / ".funcignore").read_text() + "config\n")
    out = run_tool(project, "check")
    assert out.returncode == 1
    assert "config/chains.json is excluded from the deployment package by .funcignore" in out.stderr
    _edit(
        project / "infra" / "main.parameters.json",
        lambda p: p["parameters"]["chainConfigFile"].update(value="nope.json"),
    )
    out = run_tool(project, "check")
    assert out.returncode == 1 and "chainConfigFile: cannot read" in out.stderr


def test_parameters_that_disagree_with_the_configuration_are_refused(project: Path) -> None:
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(two_vault_config()))

    def stale(params: dict[str, Any]) -> None:
        values = params["parameters"]
        values["vaultResourceIds"] = {"value": [VAULT.format("vault-a"), VAULT.format("vault-old")]}
        values["vmResourceIds"] = {"value": [VM.format("a1"), VM.format("gone")]}
        values["chainConfig"] = {"value": {"chains": []}}

    _edit(project / "infra" / "main.parameters.json", stale)
    out = run_tool(project, "check")
    assert out.returncode == 1
    assert f"vaultResourceIds lacks {VAULT.format('vault-b').lower()}" in out.stderr
    assert f"vaultResourceIds lists {VAULT.format('vault-old').lower()}, which no chain uses" in out.stderr
    assert "gcMode is 'weekly-policy' but the configuration's gc.mode is 'weekend-window'" in out.stderr
    assert f"vmResourceIds lists {VM.format('gone')}, which no chain backs up" in out.stderr
    assert "parameter chainConfig is no longer used" in out.stderr
    # sync derives vaultResourceIds and gcMode; vmResourceIds and chainConfig stay the operator's call
    _edit(
        project / "infra" / "main.parameters.json",
        lambda p: [p["parameters"].pop(k) for k in ("vmResourceIds", "chainConfig")],
    )
    assert run_tool(project, "sync").returncode == 0
    params = json.loads((project / "infra" / "main.parameters.json").read_text())["parameters"]
    assert params["vaultResourceIds"]["value"] == [VAULT.format("vault-a"), VAULT.format("vault-b")]
    assert params["gcMode"]["value"] == "weekend-window"
    assert params["environmentName"]["value"] == "${AZURE_ENV_NAME}"  # the rest untouched
    out = run_tool(project, "check")
    assert out.returncode == 0, out.stderr


def test_azd_placeholders_are_resolved_from_the_environment(project: Path) -> None:
    _edit(
        project / "infra" / "main.parameters.json",
        lambda p: p["parameters"]["gcMode"].update(value="${GC_MODE=weekly-policy}"),
    )
    assert run_tool(project, "check").returncode == 0  # the default applies
    out = run_tool(project, "check", env={"GC_MODE": "weekend-window"})
    assert out.returncode == 1 and "gcMode is 'weekend-window'" in out.stderr
    # an array parameter from an azd environment value (JSON text)
    _edit(
        project / "infra" / "main.parameters.json",
        lambda p: p["parameters"]["vaultResourceIds"].update(value="${VAULT_IDS}"),
    )
    assert run_tool(project, "check", env={"VAULT_IDS": json.dumps([VAULT.format("vault-prod")])}).returncode == 0
    out = run_tool(project, "check", env={"VAULT_IDS": json.dumps([VAULT.format("vault-other")])})
    assert out.returncode == 1 and "vaultResourceIds lacks" in out.stderr


def test_a_5000_vm_configuration_passes_and_is_reported_as_too_big_for_a_variable(project: Path) -> None:
    from tests.chain.test_config_scale import big_config

    config = big_config(5000)
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(config))
    vault = config["chains"][0]["targets"][0]["vaultId"]
    _edit(
        project / "infra" / "main.parameters.json",
        lambda p: p["parameters"].update(vaultResourceIds={"value": [vault]}, vmResourceIds={"value": []}),
    )
    out = run_tool(project, "check")
    assert out.returncode == 0, out.stderr
    assert "1 chain(s), 5000 VM(s), 1 vault(s)" in out.stdout
    assert "would not fit the 128 KiB BACKUPCHAIN_CONFIG_JSON limit" in out.stdout


def test_too_many_vm_role_assignments_for_one_template_are_refused(project: Path, bicep: dict) -> None:
    """vmResourceIds repeats VMs of the configuration; 5,000 of them would be 5,000 deployments."""
    from tests.chain.test_config_scale import big_config

    modules = bicep["main.bicep"]["modules"]
    loops = {"vaultAccess", "vmAccess"}
    assert loops <= set(modules) and len(set(modules) - loops) <= MAIN_MODULES
    config = big_config(1000)
    (project / DEFAULT_CONFIG_FILE).write_text(json.dumps(config))
    vms = config["chains"][0]["targets"][0]["vms"]

    def params(count: int) -> Any:
        return lambda p: p["parameters"].update(
            vaultResourceIds={"value": [config["chains"][0]["targets"][0]["vaultId"]]},
            vmResourceIds={"value": vms[:count]},
        )

    _edit(project / "infra" / "main.parameters.json", params(700))
    assert run_tool(project, "check").returncode == 0
    _edit(project / "infra" / "main.parameters.json", params(1000))
    out = run_tool(project, "check")
    assert out.returncode == 1 and "over ARM's 800 resources per template: leave vmResourceIds empty" in out.stderr
