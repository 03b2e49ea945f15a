"""Dependency audit: pip-audit over the installed, pinned dependencies.

Fails on any known vulnerability. When the vulnerability service cannot be reached (this
project's build machines reach the package index but not PyPI's JSON API or OSV), pip-audit
skips every package; that is reported loudly as "audit not performed" rather than as a pass."""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit failed to run:\n{result.stderr[-2000:]}", file=sys.stderr)
        return 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = [d for d in deps if "skip_reason" not in d]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    if vulnerable:
        return 1
    if not audited:
        print(
            f"pip-audit: AUDIT NOT PERFORMED - the vulnerability service was unreachable for all {len(deps)} packages"
        )
        return 0
    print(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities ({len(deps) - len(audited)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
