"""Local emulator of the Azure Recovery Services vault ARM API for IaaS VM backup.

Run with ``python -m emulators.recoveryservices --port 8443 --scenario FILE``.
"""

from __future__ import annotations

API_VERSION = "2026-10-01"  # azure-mgmt-recoveryservicesbackup==11.2.0 default (_configuration.py)
