"""The ``backup-chain`` entry point: one parser, a sub-command per operator task. Each command
module registers its own sub-commands (``register``) and returns an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backup_chain_cli import api_commands, config_commands
from backup_chain_cli.output import EXIT_PROBLEM, EXIT_USAGE, CliError, Output

DESCRIPTION = "Operate backup chains: check a configuration, preflight it against Azure, drive runs and GC."


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backup-chain", description=DESCRIPTION)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    config_commands.register(commands)
    api_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Output(as_json=args.json)
    try:
        return int(args.run(args, output))
    except CliError as err:
        output.error(str(err))
        return err.code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as err:  # an operator sees one line, never a traceback
        output.error(f"{type(err).__name__}: {err}")
        return EXIT_PROBLEM
