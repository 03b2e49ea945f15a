import sys

from backup_chain_cli.main import main

sys.exit(main())
