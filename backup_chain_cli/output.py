"""How every command reports: rich tables for people, ``--json`` for scripts, errors on stderr as
one line naming what is wrong, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

EXIT_OK = 0
EXIT_PROBLEM = 1  # the command ran and found something wrong (a check failed, the API refused)
EXIT_USAGE = 2  # the command could not run as asked (bad arguments, unreadable file, no such run)


class CliError(Exception):
    """A problem the operator can fix, already phrased for them; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class Output:
    """Writes a command's result: a table or text on a terminal, JSON with ``--json``."""

    def __init__(self, as_json: bool, stdout: Any = None, stderr: Any = None):
        self.as_json = as_json
        self.out = Console(file=stdout or sys.stdout, soft_wrap=True, highlight=False)
        self.err = Console(file=stderr or sys.stderr, soft_wrap=True, highlight=False)

    def data(self, value: Any) -> None:
        """The command's machine-readable result (printed only with ``--json``)."""
        if self.as_json:
            self.out.file.write(json.dumps(value, indent=2, default=str) + "\n")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.as_json:
            return
        # Text, not markup: a chain name or an Azure message with "[...]" is shown as it is.
        table = Table(title=Text(title), title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")  # ids and messages whole, never cut with …
        for row in rows:
            table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
        self.out.print(table)

    def text(self, message: str) -> None:
        if not self.as_json:
            self.out.print(message, markup=False)

    def progress(self, message: str) -> None:
        """Progress of a long command: always on stderr, so ``--json`` output stays clean."""
        self.err.print(message, markup=False, style="dim")

    def warning(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False, style="red")
