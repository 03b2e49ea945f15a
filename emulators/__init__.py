"""Local emulators of the Azure services the app uses (no knowledge of the app itself)."""
