"""The project's main job, run by ``./dev run``."""
