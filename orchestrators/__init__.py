"""Deterministic orchestrator functions: no I/O, no clock, no randomness (the SDK replays them)."""
