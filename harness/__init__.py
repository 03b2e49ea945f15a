"""Driving the whole product locally (devhost + both emulators) for tests and benchmarks: chain
stack helpers and the seeded fault world. Never deployed; the app never imports it."""
