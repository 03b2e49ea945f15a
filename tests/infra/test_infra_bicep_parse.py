"""Every Bicep file parses; the parameters file and azure.yaml agree with main.bicep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def test_infra_has_bicep_files() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert len(names) >= 5


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    parsed = BicepParser().parse(file_path=path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_main_modules_exist(bicep: dict) -> None:
    for name, module in bicep["main.bicep"]["modules"].items():
        target = (INFRA / module["detail"]["path"]).resolve()
        assert target.is_file(), f"module {name} points at missing {target}"


def test_parameters_file_matches_main(bicep: dict) -> None:
    declared = bicep["main.bicep"]["parameters"]
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    unknown = set(values) - set(declared)
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {unknown}"
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= set(values), f"required parameters missing from main.parameters.json: {required - set(values)}"
    # The chain configuration file the app ships and gcMode agree (the role set depends on gcMode);
    # tests/infra/test_infra_chain_config.py checks every repeated parameter.
    chains = json.loads((INFRA.parent / values["chainConfigFile"]["value"]).read_text())
    assert values["gcMode"]["value"] == chains["gc"]["mode"]


def test_module_params_are_declared(bicep: dict) -> None:
    """Every parameter main.bicep passes to a module is declared by that module."""
    for name, module in bicep["main.bicep"]["modules"].items():
        target = module["detail"]["path"]
        declared = set(bicep[target]["parameters"])
        config = module["config"]
        while "params" not in config:  # unwrap condition / loop wrappers
            config = config["config"]
        passed = set(config["params"])
        assert passed <= declared, f"module {name} passes undeclared params {passed - declared} to {target}"
        required = {n for n, p in bicep[target]["parameters"].items() if p.get("default") is None}
        assert required <= passed, f"module {name} omits required params {required - passed} of {target}"


def test_azure_yaml_declares_python_function_service() -> None:
    text = (INFRA.parent / "azure.yaml").read_text()
    services = text.split("services:", 1)[1].split("hooks:", 1)[0]
    assert re.search(r"^  api:\s*$", services, re.M)
    assert re.search(r"^    project: \.\s*$", services, re.M)
    assert re.search(r"^    language: python\s*$", services, re.M)
    assert re.search(r"^    host: function\s*$", services, re.M)
    assert re.search(r"^  path: infra\s*$", text, re.M)
    # the postdeploy hook deploys the upstream subscription template with main.bicep's outputs
    assert "infra/modules/upstream-subscription.bicep" in text
    assert (INFRA / "modules" / "upstream-subscription.bicep").is_file()


def test_hook_uses_only_declared_outputs(bicep: dict) -> None:
    text = (INFRA.parent / "azure.yaml").read_text()
    outputs = set(bicep["main.bicep"]["outputs"])
    used = set(re.findall(r"\$(?:env:)?([A-Z][A-Z0-9_]+)", text))
    assert used <= outputs, f"azure.yaml hook reads variables main.bicep does not output: {used - outputs}"
