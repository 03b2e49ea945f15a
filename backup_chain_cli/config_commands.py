"""``validate`` (offline: every problem of a configuration named, warnings for risky settings, infra
parameters agreement), ``sync-parameters`` (write the parameters derived from it) and ``preflight``
(the configuration against Azure: backup_chain_cli/preflight.py)."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backup_chain.config import MAX_ENV_VALUE_BYTES, ChainConfig, ConfigProblem
from backup_chain_cli import parameters, preflight
from backup_chain_cli.config_file import load, problems_data, show_problems
from backup_chain_cli.config_warnings import config_warnings
from backup_chain_cli.output import EXIT_OK, EXIT_PROBLEM, CliError, Output

# Problems sync-parameters fixes (it writes these parameters from the configuration).
DERIVED_FIELDS = {parameters.field(name) for name in ("vaultResourceIds", "gcMode", "gcRemediate")}


def _parameter_problems(args: argparse.Namespace, config: ChainConfig) -> list[ConfigProblem]:
    root = Path(args.root)
    try:
        document = parameters.read_parameters(Path(args.parameters))
    except OSError as err:
        raise CliError(f"{args.parameters}: cannot read ({err.strerror})") from None
    except ValueError as err:
        raise CliError(str(err)) from None
    values: dict[str, Any] = document["parameters"]
    env = dict(os.environ)
    relative = parameters.config_file(values, env)
    found = []
    if relative is not None:
        config_field = parameters.field("chainConfigFile")
        found += [ConfigProblem(config_field, p) for p in parameters.package_problems(root, relative)]
        if (root / relative).resolve() != Path(args.config).resolve():
            found.append(
                ConfigProblem(
                    config_field,
                    f"{relative!r} is the file the app loads in Azure, not {args.config}: validate that file, or "
                    "point chainConfigFile at this one",
                )
            )
    found += parameters.parameter_problems(config, values, env)
    return found


def run_validate(args: argparse.Namespace, output: Output) -> int:
    path = Path(args.config)
    config, problems = load(path)
    if config is not None and args.parameters:
        problems += _parameter_problems(args, config)
    warnings = config_warnings(config, datetime.now(timezone.utc)) if config is not None else []
    result: dict[str, Any] = {
        "config": str(path),
        "valid": not problems,
        "problems": problems_data(problems),
        "warnings": [{"field": w.path, "message": w.message} for w in warnings],
    }
    for warning in warnings:
        output.warning(f"{warning.path}: {warning.message}")
    if config is None or problems:
        show_problems(output, str(path), problems)
        if any(p.path in DERIVED_FIELDS for p in problems):
            output.text(f"write the derived parameters with: backup-chain sync-parameters {path}")
        output.data(result)
        return EXIT_PROBLEM
    size = path.stat().st_size
    vms = sum(len(chain.vm_ids()) for chain in config.chains)
    result.update(chains=len(config.chains), vms=vms, vaults=len(config.vault_ids()), bytes=size)
    inline = "fits" if size <= MAX_ENV_VALUE_BYTES else "would not fit"
    output.text(
        f"{path}: valid; {len(config.chains)} chain(s), {vms} VM(s), {len(config.vault_ids())} vault(s), "
        f"{size} bytes (ships as a file; {inline} the 128 KiB BACKUPCHAIN_CONFIG_JSON limit)"
        + (f"; {len(warnings)} warning(s)" if warnings else "")
    )
    output.data(result)
    return EXIT_OK


def run_sync(args: argparse.Namespace, output: Output) -> int:
    config, problems = load(Path(args.config))
    if config is None:
        show_problems(output, args.config, problems)
        output.data({"config": args.config, "problems": problems_data(problems)})
        return EXIT_PROBLEM
    try:
        derived = parameters.write_derived(Path(args.parameters), config)
    except OSError as err:
        raise CliError(f"{args.parameters}: cannot update ({err.strerror})") from None
    except ValueError as err:
        raise CliError(str(err)) from None
    output.text(f"{args.parameters}: " + "; ".join(f"{name} = {value}" for name, value in derived.items()))
    output.data({"parameters": args.parameters, "written": derived})
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``validate``, ``sync-parameters`` and ``preflight`` (argparse sub-parsers)."""
    validate = commands.add_parser(
        "validate",
        help="check a chain configuration offline: every problem named, warnings for risky settings",
        description="Check a chain configuration offline. Exit 0: valid (warnings may be printed); 1: problems.",
    )
    validate.add_argument("config", metavar="CONFIG", help="the chain configuration file (e.g. config/chains.json)")
    validate.add_argument(
        "--parameters",
        metavar="FILE",
        help="also check the azd/ARM parameters file (e.g. infra/main.parameters.json) against the configuration, "
        "and that the configuration ships in the deployment package",
    )
    validate.add_argument("--root", default=".", help="the app root, where .funcignore is (default: %(default)s)")
    validate.set_defaults(run=run_validate)
    sync = commands.add_parser(
        "sync-parameters",
        help="write vaultResourceIds, gcMode and gcRemediate derived from a configuration into the parameters file",
    )
    sync.add_argument("config", metavar="CONFIG", help="the chain configuration file")
    sync.add_argument("--parameters", default=str(parameters.PARAMETERS), metavar="FILE", help="(default: %(default)s)")
    sync.set_defaults(run=run_sync)
    preflight.register(commands)
