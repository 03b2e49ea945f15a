"""``backup-chain``: the operator's command line (docs/cli.md). Offline checks of a configuration
(``validate``), checks against Azure before deploying (``preflight``) and the HTTP API of a
deployed or local app (``chains``, ``runs``, ``events``, ``gc``)."""
