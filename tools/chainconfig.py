"""Check the chain configuration before it deploys (the azd ``preprovision`` and ``predeploy``
hooks run this; so can you).

    python -m tools.chainconfig check [--config FILE] [--parameters infra/main.parameters.json]
    python -m tools.chainconfig sync  [--config FILE] [--parameters infra/main.parameters.json]

``check`` validates the configuration file with the app's own loader (the error names the field),
checks that the file ships in the deployment package (not excluded by ``.funcignore``) and that
the infra parameters repeating it agree with it: ``vaultResourceIds`` is exactly the configured
vaults, ``gcMode`` is ``gc.mode`` (default ``weekly-policy``), ``vmResourceIds`` lists only
configured VMs. ``sync`` writes ``vaultResourceIds`` and ``gcMode`` derived from the
configuration into the parameters file. Exit status 0: fine; 1: a problem, printed to stderr.
``check`` also warns (exit status still 0) when the chains' windows could start more on-demand
backups of one VM in 24 hours than Azure accepts (backup_chain.daily_limit).

The configuration is the file the app loads in Azure: ``chainConfigFile`` (default
``config/chains.json``, relative to the app root; app setting ``BACKUPCHAIN_CONFIG``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_chain.config import MAX_ENV_VALUE_BYTES, ChainConfig, ConfigError, load_config_file
from backup_chain.daily_limit import daily_limit_warnings

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = Path("infra") / "main.parameters.json"
# infra/main.bicep's chainConfigFile default (tests/infra checks they agree).
DEFAULT_CONFIG_FILE = "config/chains.json"
DEFAULT_GC_MODE = "weekly-policy"
ARM_MAX_RESOURCES = 800
MAIN_MODULES = 12  # main.bicep's modules besides the per-vault and per-VM loops (tests/infra counts them)
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


def derived_parameters(config: ChainConfig) -> dict[str, Any]:
    """The infra parameters that repeat the configuration."""
    return {
        "vaultResourceIds": config.vault_ids(),
        "gcMode": config.gc.mode if config.gc is not None else DEFAULT_GC_MODE,
    }


def parameter_problems(config: ChainConfig, parameters: dict[str, Any], env: dict[str, str]) -> list[str]:
    values = {name: _resolve(entry.get("value"), env) for name, entry in parameters.items()}
    want = derived_parameters(config)
    problems = []
    if "chainConfig" in values:
        problems.append(
            "parameter chainConfig is no longer used: the configuration ships as a file (chainConfigFile); "
            "move it there and remove the parameter"
        )
    vaults = values.get("vaultResourceIds")
    if not isinstance(vaults, list) or not all(isinstance(v, str) for v in vaults):
        problems.append(
            f"vaultResourceIds must be a list of vault ids; the configuration's are {want['vaultResourceIds']}"
        )
    else:
        have = {v.lower() for v in vaults}
        need = {v.lower() for v in want["vaultResourceIds"]}
        for vault in sorted(need - have):
            problems.append(f"vaultResourceIds lacks {vault}, a vault of the configuration: the app could not use it")
        for vault in sorted(have - need):
            problems.append(f"vaultResourceIds lists {vault}, which no chain uses: remove it (least privilege)")
    gc_mode = values.get("gcMode", DEFAULT_GC_MODE)
    if gc_mode != want["gcMode"]:
        problems.append(
            f"gcMode is {gc_mode!r} but the configuration's gc.mode is {want['gcMode']!r}: "
            "the vault role would not match what GC does"
        )
    vms = values.get("vmResourceIds") or []
    known = {vm.lower() for chain in config.chains for _, vm in chain.vm_ids()}
    for vm in vms if isinstance(vms, list) else []:
        if str(vm).lower() not in known:
            problems.append(f"vmResourceIds lists {vm}, which no chain backs up: remove it")
    # main.bicep deploys one module per vault and per VM of vmResourceIds, beside ~10 others; ARM allows
    # 800 resources in a template (learn.microsoft.com/azure/azure-resource-manager/templates/error-job-size-exceeded).
    modules = len(vaults if isinstance(vaults, list) else []) + len(vms if isinstance(vms, list) else []) + MAIN_MODULES
    if modules > ARM_MAX_RESOURCES:
        problems.append(
            f"vaultResourceIds and vmResourceIds make {modules} deployments in main.bicep, over ARM's "
            f"{ARM_MAX_RESOURCES} resources per template: leave vmResourceIds empty (it only feeds the optional "
            "grantVmWriteForResume role) or grant that role per resource group yourself"
        )
    return problems


def config_file(parameters: dict[str, Any], env: dict[str, str]) -> str:
    entry = parameters.get("chainConfigFile")
    return str(_resolve(entry.get("value"), env) if entry else DEFAULT_CONFIG_FILE)


# --- commands -------------------------------------------------------------------------------------
def _load(root: Path, params_path: Path, config_arg: str | None) -> tuple[dict[str, Any], str, ChainConfig]:
    document = json.loads(params_path.read_text())
    parameters: dict[str, Any] = document["parameters"]
    relative = config_arg or config_file(parameters, dict(os.environ))
    return document, relative, load_config_file(root / relative, "chainConfigFile")


def check(root: Path, params_path: Path, config_arg: str | None = None) -> list[str]:
    document, relative, config = _load(root, params_path, config_arg)
    problems = []
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        problems.append(f"chainConfigFile {relative!r} must be a path inside the app (relative to its root)")
    elif excluded_from_package(root, Path(relative).as_posix()):
        problems.append(f"{relative} is excluded from the deployment package by .funcignore: the app could not read it")
    problems += parameter_problems(config, document["parameters"], dict(os.environ))
    return problems


def sync(root: Path, params_path: Path, config_arg: str | None = None) -> dict[str, Any]:
    document, _, config = _load(root, params_path, config_arg)
    for name, value in derived_parameters(config).items():
        document["parameters"][name] = {"value": value}
    params_path.write_text(json.dumps(document, indent=2) + "\n")
    return derived_parameters(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chainconfig", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("check", "sync"))
    parser.add_argument("--config", help="configuration file, relative to --root (default: chainConfigFile)")
    parser.add_argument("--parameters", default=str(PARAMETERS), help="ARM parameters file (default: %(default)s)")
    parser.add_argument("--root", default=str(REPO_ROOT), help="the app root (default: this repository)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    params_path = Path(args.parameters)
    if not params_path.is_absolute():
        params_path = root / params_path
    try:
        if args.command == "sync":
            print(f"{params_path}: {json.dumps(sync(root, params_path, args.config))}")
            return 0
        problems = check(root, params_path, args.config)
    except ConfigError as err:
        print(f"chain configuration is invalid: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as err:
        print(f"cannot check {params_path}: {err!r}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"chain configuration vs infra: {problem}", file=sys.stderr)
    if problems:
        print(
            "fix the parameters, or write them from the configuration: python -m tools.chainconfig sync",
            file=sys.stderr,
        )
        return 1
    _, relative, config = _load(root, params_path, args.config)
    for warning in daily_limit_warnings(config.chains, datetime.now(timezone.utc)):
        print(f"warning: {warning}", file=sys.stderr)
    vms = sum(len(c.vm_ids()) for c in config.chains)
    size = (root / relative).stat().st_size
    inline = "fits" if size <= MAX_ENV_VALUE_BYTES else "would not fit"
    print(
        f"{relative}: valid; {len(config.chains)} chain(s), {vms} VM(s), {len(config.vault_ids())} vault(s), "
        f"{size} bytes (ships as a file; {inline} the 128 KiB BACKUPCHAIN_CONFIG_JSON limit)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
