"""Main job (placeholder until the backup chain lands): host a sample Durable app on devhost,
run a 5-activity chain through the real SDK and print its result."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests

from devhost.procs import start_service

APP_DIR = Path(__file__).resolve().parent.parent / "bench" / "apps" / "devhost_bench"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_service(
            "devhost",
            ["devhost", "start", "--app-dir", str(APP_DIR), "--port", "0", "--state", f"{tmp}/state.db"],
            log_dir=Path(tmp),
        )
        try:
            key = svc.info["keys"]["durabletask_extension"]
            base = f"{svc.url}/runtime/webhooks/durabletask"
            started = requests.post(f"{base}/orchestrators/chain5/demo", params={"code": key}, json=0, timeout=30)
            started.raise_for_status()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = requests.get(started.json()["statusQueryGetUri"], timeout=30).json()
                if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                    print(f"chain5 {status['runtimeStatus']}: output={status['output']}")
                    return 0 if status["output"] == 5 else 1
                time.sleep(0.1)
            print("chain5 did not finish within 60 s", file=sys.stderr)
            return 1
        finally:
            svc.stop()


if __name__ == "__main__":
    sys.exit(main())
