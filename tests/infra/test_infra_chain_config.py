"""The chain configuration deploys as a file in the package and is checked before it deploys:
infra names the file the app loads, .funcignore ships it (read as gitignore reads it), and the azd
hooks run ``backup-chain validate`` before provisioning and deploying and ``preflight`` after
provisioning. What validate itself checks is in tests/cli/test_validate.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from backup_chain_cli.parameters import DEFAULT_CONFIG_FILE, MAIN_MODULES, excluded_from_package

REPO_ROOT = Path(__file__).resolve().parents[2]
RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups"
VAULT = RG + "/rg-backup/providers/Microsoft.RecoveryServices/vaults/{}"
VM = RG + "/rg-app/providers/Microsoft.Compute/virtualMachines/{}"


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
    """backup_chain_cli.parameters' .funcignore reading, against pathspec's gitignore implementation, on
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


def _hook(name: str) -> dict[str, str]:
    """``platform -> its block`` of one azd hook in azure.yaml (two-space indented YAML, read as
    text: no YAML parser is pinned)."""
    text = (REPO_ROOT / "azure.yaml").read_text().split("\nhooks:\n", 1)[1]
    section = text.split(f"\n  {name}:\n", 1)[1] if not text.startswith(f"  {name}:\n") else text[len(name) + 4 :]
    section = re.split(r"\n  (?! )", section, maxsplit=1)[0]  # up to the next hook (or comment) at hook depth
    blocks = re.split(r"^    (posix|windows):\n", section, flags=re.MULTILINE)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def _run(block: str) -> str:
    return block.split("run: ", 1)[1].split("\n", 1)[0]


def test_azd_hooks_validate_before_provision_and_deploy_and_preflight_after_provision() -> None:
    validate = "-m backup_chain_cli validate config/chains.json --parameters infra/main.parameters.json"
    for name, command in (
        ("preprovision", validate),
        ("predeploy", validate),
        ("postprovision", "-m backup_chain_cli preflight config/chains.json --principal-id"),
    ):
        blocks = _hook(name)
        assert set(blocks) == {"posix", "windows"}, name
        for platform, block in blocks.items():
            assert command in _run(block), (name, platform)
            assert "continueOnError: false" in block and "interactive: false" in block, (name, platform)
    assert _run(_hook("postprovision")["posix"]).endswith('"$APP_PRINCIPAL_ID"')
    assert _run(_hook("postprovision")["windows"]).endswith('"$env:APP_PRINCIPAL_ID"')


def test_the_hook_commands_pass_on_the_repository() -> None:
    """What preprovision/predeploy run, run from the repository root as azd does."""
    command = _run(_hook("preprovision")["posix"]).split()
    assert command[:3] == ["python3", "-m", "backup_chain_cli"]
    out = subprocess.run(
        [sys.executable, *command[1:]], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert f"{DEFAULT_CONFIG_FILE}: valid" in out.stdout


def test_main_bicep_has_the_module_count_validate_assumes(bicep: dict) -> None:
    """validate refuses vmResourceIds that would make main.bicep exceed ARM's 800 resources, counting
    MAIN_MODULES besides the per-vault, per-VM and per-resource-group (Reader) loops."""
    modules = bicep["main.bicep"]["modules"]
    loops = {"vaultAccess", "vmAccess", "vmReaderAccess"}
    assert loops <= set(modules) and len(set(modules) - loops) <= MAIN_MODULES
