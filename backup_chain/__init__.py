"""The domain core: pure, typed, no I/O. Orchestrators, activities and triggers build on it."""
