"""The service processes a local-stack command started, read from /proc (Linux, as CI runs)."""

from __future__ import annotations

from pathlib import Path


def stack_children(pid: int) -> dict[str, int]:
    """The service processes ``pid`` started with ``python -m``: {devhost|recoveryservices|eventgrid: pid}."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid and len(cmdline) > 2 and cmdline[1] == b"-m":
            found[cmdline[2].decode().rsplit(".", 1)[-1]] = int(stat.parent.name)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited, only not yet been reaped
