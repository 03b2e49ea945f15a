"""Reading the chain configuration a command names: the configuration, or every problem it has."""

from __future__ import annotations

from pathlib import Path

from backup_chain.config import ChainConfig, ConfigError, ConfigProblem, parse_config_bytes
from backup_chain_cli.output import CliError, Output


def load(path: Path) -> tuple[ChainConfig | None, list[ConfigProblem]]:
    """The configuration at ``path``, or every problem it has. A missing or unreadable file is no
    problem of the configuration but of the command line (CliError, exit 2)."""
    if not path.exists():
        raise CliError(f"{path}: no such file; name the chain configuration file (e.g. config/chains.json)")
    if not path.is_file():
        raise CliError(f"{path}: not a file; name the chain configuration file (e.g. config/chains.json)")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CliError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return parse_config_bytes(raw, path.name), []
    except ConfigError as err:
        return None, err.problems


def show_problems(output: Output, source: str, problems: list[ConfigProblem]) -> None:
    """The problems as a table (field, problem); ``--json`` gets them in the command's data."""
    output.table(f"{source}: {len(problems)} problem(s)", ("field", "problem"), [(p.path, p.message) for p in problems])


def problems_data(problems: list[ConfigProblem]) -> list[dict[str, str]]:
    return [{"field": p.path, "message": p.message} for p in problems]
