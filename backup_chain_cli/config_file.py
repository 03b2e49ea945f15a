"""Reading the chain configuration a command names: the configuration, or every problem it has."""

from __future__ import annotations

from pathlib import Path

from backup_chain.config import ChainConfig, ConfigError, ConfigProblem, load_config_file
from backup_chain_cli.output import CliError, Output


def load(path: Path) -> tuple[ChainConfig | None, list[ConfigProblem]]:
    """The configuration at ``path``, or every problem it has. A missing file is no problem of
    the configuration but of the command line (CliError, exit 2)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file; name the chain configuration file (e.g. config/chains.json)")
    try:
        return load_config_file(path, str(path)), []
    except ConfigError as err:
        return None, err.problems


def show_problems(output: Output, source: str, problems: list[ConfigProblem]) -> None:
    """The problems as a table (field, problem); ``--json`` gets them in the command's data."""
    output.table(f"{source}: {len(problems)} problem(s)", ("field", "problem"), [(p.path, p.message) for p in problems])


def problems_data(problems: list[ConfigProblem]) -> list[dict[str, str]]:
    return [{"field": p.path, "message": p.message} for p in problems]
