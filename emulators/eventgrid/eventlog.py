"""Append-only JSONL files: accepted events per topic and dead-lettered events per subscription.

``<state>/events/<topic>.jsonl``: one line per accepted event:
``{"receivedAt": ..., "topic": ..., "schema": ..., "event": {...}}`` so a person (and the demo)
can see exactly what downstream received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class JsonlFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def truncate(self) -> None:
        if self.path.exists():
            self.path.write_text("")


def topic_log(state_dir: Path, topic: str) -> JsonlFile:
    return JsonlFile(Path(state_dir) / "events" / f"{topic}.jsonl")


def dead_letter_file(state_dir: Path, configured: str) -> JsonlFile:
    path = Path(configured)
    return JsonlFile(path if path.is_absolute() else Path(state_dir) / path)
