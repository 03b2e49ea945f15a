"""Client functions: the HTTP API, the upstream Event Grid trigger and the timer triggers."""
