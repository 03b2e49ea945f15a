"""Project tooling run by ./dev."""
