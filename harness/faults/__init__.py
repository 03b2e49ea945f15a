"""The fault suite's world: seeded cases, the driver that runs one, and the invariants it must keep
(shared by tests/faults and bench/fault_bench.py)."""
