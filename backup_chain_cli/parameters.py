"""What ``validate --parameters`` and ``sync-parameters`` check and write beyond the configuration
itself: the configuration ships in the deployment package (not excluded by ``.funcignore``) and the
infra parameters repeating it agree with it: ``vaultResourceIds`` is exactly the configured vaults,
``gcMode`` is ``gc.mode`` (default ``weekly-policy``), ``gcRemediate`` is ``gc.remediate`` (the vault
role's protectedItems/write, infra/modules/vault-role.bicep), ``vmResourceIds`` lists only configured VMs.
The configuration is the file the app loads in Azure: ``chainConfigFile`` (default
``config/chains.json``, relative to the app root; app setting ``BACKUPCHAIN_CONFIG``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from backup_chain.config import ChainConfig, ConfigProblem

PARAMETERS = Path("infra") / "main.parameters.json"
# infra/main.bicep's chainConfigFile default (tests/infra checks they agree).
DEFAULT_CONFIG_FILE = "config/chains.json"
DEFAULT_GC_MODE = "weekly-policy"
# infra/modules/vault-role.bicep grants protectedItems/write (stop and resume protection) only in
# this mode or with gcRemediate; GC needs it for weekend-window and for gc.remediate (preflight.required_actions).
PROTECTION_WRITE_GC_MODE = "weekend-window"
ARM_MAX_RESOURCES = 800
MAIN_MODULES = 14  # main.bicep's modules besides the per-vault and per-VM loops (tests/infra counts them)
_PLACEHOLDER = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>[^}]*))?\}$")


# --- the deployment package (.funcignore) ---------------------------------------------------------
def funcignore_rules(root: Path) -> list[tuple[bool, str]]:
    """(negated, pattern) of ``root/.funcignore``. azd packages a function app without what its
    .funcignore excludes, in gitignore syntax
    (learn.microsoft.com/azure/developer/azure-developer-cli/service-packaging-ignore-files)."""
    path = root / ".funcignore"
    if not path.is_file():
        return []
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line[1:] if negated else line))
    return rules


def _regex(pattern: str) -> str:
    """gitignore glob -> regex: ``*``/``?``/``[...]`` stay within one name, ``**`` spans folders."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            close = pattern.index("]", i + 2)
            body = pattern[i + 1 : close]
            out, i = out + "[" + ("^" + body[1:] if body[:1] in "!^" else body).replace("\\", "\\\\") + "]", close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _matches(pattern: str, path: str, is_dir: bool) -> bool:
    if pattern.endswith("/"):
        if not is_dir:
            return False
        pattern = pattern.rstrip("/")
    if "/" not in pattern:  # no slash: matches a name at any depth
        return re.fullmatch(_regex(pattern), path.rsplit("/", 1)[-1]) is not None
    return re.fullmatch(_regex(pattern.lstrip("/")), path) is not None


def excluded_from_package(root: Path, relative: str) -> bool:
    """Whether ``.funcignore`` keeps ``relative`` (posix, relative to ``root``) out of the package:
    the file or one of its folders matches (the last matching rule decides, ``!`` re-includes)."""
    rules = funcignore_rules(root)
    parts = relative.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        candidate = "/".join(parts[:depth])
        state = False
        for negated, pattern in rules:
            if _matches(pattern, candidate, is_dir=depth < len(parts)):
                state = not negated
        if state:
            return True
    return False


# --- parameters -----------------------------------------------------------------------------------
def _resolve(value: Any, env: dict[str, str]) -> Any:
    """An azd ``${NAME}`` / ``${NAME=default}`` placeholder, resolved from the environment (azd gives
    hooks its environment's values); a JSON array value is parsed, as azd does for array parameters
    (github.com/Azure/azure-dev/pull/6694); anything else unchanged."""
    if isinstance(value, str) and (match := _PLACEHOLDER.match(value)):
        resolved = env.get(match["name"], match["default"])
        if resolved is not None and resolved.lstrip().startswith("["):
            try:
                return json.loads(resolved)
            except json.JSONDecodeError:
                return resolved
        return resolved
    return value


def _unset_placeholder(value: Any, env: dict[str, str]) -> str | None:
    """The ``${NAME}`` a parameter holds when the environment sets no NAME and it has no default."""
    match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
    return value if match and match["name"] not in env and match["default"] is None else None


def field(name: str) -> str:
    """A parameter's field, as the problems table shows it."""
    return f"parameters.{name}"


def derived_parameters(config: ChainConfig) -> dict[str, Any]:
    """The infra parameters that repeat the configuration."""
    return {
        "vaultResourceIds": config.vault_ids(),
        "gcMode": config.gc.mode if config.gc is not None else DEFAULT_GC_MODE,
        "gcRemediate": bool(config.gc is not None and config.gc.remediate),
    }


def _vault_problems(vaults: Any, want: list[str]) -> list[ConfigProblem]:
    at = field("vaultResourceIds")
    if not isinstance(vaults, list) or not all(isinstance(v, str) for v in vaults):
        return [ConfigProblem(at, f"must be a list of vault ids; the configuration's are {want}")]
    have = {v.lower() for v in vaults}
    need = {v.lower() for v in want}
    lacking = [f"lacks {v}, a vault of the configuration: the app could not use it" for v in sorted(need - have)]
    extra = [f"lists {v}, which no chain uses: remove it (least privilege)" for v in sorted(have - need)]
    return [ConfigProblem(at, message) for message in lacking + extra]


def parameter_problems(config: ChainConfig, parameters: dict[str, Any], env: dict[str, str]) -> list[ConfigProblem]:
    values = {name: _resolve(entry.get("value"), env) for name, entry in parameters.items()}
    want = derived_parameters(config)
    problems = []
    unset = {
        name: placeholder
        for name, entry in parameters.items()
        if (placeholder := _unset_placeholder(entry.get("value"), env)) is not None
    }
    for name in ("chainConfigFile", "vaultResourceIds", "gcMode", "gcRemediate", "vmResourceIds"):
        if name in unset:
            problems.append(
                ConfigProblem(
                    field(name),
                    f"{unset[name]} is an unset azd placeholder: set {unset[name][2:-1]} in the azd environment "
                    f"(azd env set) or give it a default ({unset[name][:-1]}=...}})",
                )
            )
    if "chainConfig" in values:
        problems.append(
            ConfigProblem(
                field("chainConfig"),
                "is no longer used: the configuration ships as a file (chainConfigFile); move it there and remove "
                "the parameter",
            )
        )
    vaults = values.get("vaultResourceIds")
    if "vaultResourceIds" not in unset:
        problems += _vault_problems(vaults, want["vaultResourceIds"])
    gc_mode = values.get("gcMode", DEFAULT_GC_MODE)
    if "gcMode" not in unset and gc_mode != want["gcMode"]:
        problems.append(
            ConfigProblem(
                field("gcMode"),
                f"is {gc_mode!r} but the configuration's gc.mode is {want['gcMode']!r}: the vault role would not "
                "match what GC does",
            )
        )
    remediate = values.get("gcRemediate", False)
    if "gcRemediate" not in unset and remediate != want["gcRemediate"]:
        problems.append(
            ConfigProblem(
                field("gcRemediate"),
                f"is {remediate!r} but the configuration's gc.remediate is {want['gcRemediate']!r}: the vault role "
                "grants protectedItems/write (resume protection) only with gcRemediate true or gcMode "
                f"{PROTECTION_WRITE_GC_MODE!r}",
            )
        )
    vms = values.get("vmResourceIds") or []
    known = {vm.lower() for chain in config.chains for _, vm in chain.vm_ids()}
    for vm in vms if isinstance(vms, list) else []:
        if str(vm).lower() not in known:
            problems.append(ConfigProblem(field("vmResourceIds"), f"lists {vm}, which no chain backs up: remove it"))
    # main.bicep deploys one module per vault, per VM of vmResourceIds and per vmReaderResourceGroupIds
    # group, beside ~10 others; ARM allows 800 resources in a template
    # (learn.microsoft.com/azure/azure-resource-manager/templates/error-job-size-exceeded).
    groups = values.get("vmReaderResourceGroupIds") or []  # one Reader module each (Resource Graph selections)
    modules = sum(len(v) for v in (vaults, vms, groups) if isinstance(v, list)) + MAIN_MODULES
    if modules > ARM_MAX_RESOURCES:
        problems.append(
            ConfigProblem(
                field("vmResourceIds"),
                f"vaultResourceIds and vmResourceIds make {modules} deployments in main.bicep, over ARM's "
                f"{ARM_MAX_RESOURCES} resources per template: leave vmResourceIds empty (it only feeds the optional "
                "grantVmWriteForResume role) or grant that role per resource group yourself",
            )
        )
    return problems


def config_file(parameters: dict[str, Any], env: dict[str, str]) -> str | None:
    """The configuration the app loads in Azure (relative to the app root); None when the
    parameter is an unset placeholder (parameter_problems reports it)."""
    entry = parameters.get("chainConfigFile")
    if entry is None:
        return DEFAULT_CONFIG_FILE
    if _unset_placeholder(entry.get("value"), env) is not None:
        return None
    return str(_resolve(entry.get("value"), env))


def package_problems(root: Path, relative: str) -> list[str]:
    """Why the app could not read ``relative`` (the configuration, relative to the app ``root``)
    once deployed: outside the app, or excluded from the package by .funcignore."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        return [f"chainConfigFile {relative!r} must be a path inside the app (relative to its root)"]
    if excluded_from_package(root, Path(relative).as_posix()):
        return [f"{relative} is excluded from the deployment package by .funcignore: the app could not read it"]
    return []


def read_parameters(path: Path) -> dict[str, Any]:
    """The ARM parameters file (``{"parameters": {name: {"value": ...}}}``); ValueError naming
    what is wrong."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("parameters"), dict):
        raise ValueError(f"{path}: not an ARM parameters file (no 'parameters' object)")
    return document


def write_derived(path: Path, config: ChainConfig) -> dict[str, Any]:
    """Write the parameters derived from ``config`` into the parameters file; the rest stays."""
    document = read_parameters(path)
    derived = derived_parameters(config)
    for name, value in derived.items():
        document["parameters"][name] = {"value": value}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return derived
