"""Activity functions: the only code that calls Azure."""
