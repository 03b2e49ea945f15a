"""Function, system and master keys: generated once and kept in the state directory, as the
Functions host keeps them in its secrets store."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

SYSTEM_KEY_NAMES = ("durabletask_extension", "eventgrid_extension")


def _new_key() -> str:
    return secrets.token_urlsafe(40)


@dataclass
class Keys:
    master: str
    function_default: str
    system: dict[str, str]

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Keys:
        path = Path(state_dir) / "keys.json"
        if path.exists():
            data = json.loads(path.read_text())
            keys = cls(data["masterKey"], data["functionKeys"]["default"], dict(data["systemKeys"]))
        else:
            keys = cls(_new_key(), _new_key(), {})
        changed = False
        for name in SYSTEM_KEY_NAMES:
            if name not in keys.system:
                keys.system[name] = _new_key()
                changed = True
        if changed or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "masterKey": keys.master,
                        "functionKeys": {"default": keys.function_default},
                        "systemKeys": keys.system,
                    },
                    indent=2,
                )
            )
            tmp.chmod(0o600)
            tmp.replace(path)
        return keys

    def allows_function(self, supplied: str | None) -> bool:
        """Function-level auth accepts a function key or the master key."""
        return bool(supplied) and any(
            secrets.compare_digest(supplied or "", k) for k in (self.function_default, self.master)
        )

    def allows_system(self, name: str, supplied: str | None) -> bool:
        return bool(supplied) and any(
            secrets.compare_digest(supplied or "", k) for k in (self.system[name], self.master)
        )

    def allows_admin(self, supplied: str | None) -> bool:
        return bool(supplied) and secrets.compare_digest(supplied or "", self.master)
