"""`python -m reporter`: the CLI, as the action runs it from its venv (see action.yml, Install the reporter)."""

import sys

from reporter.cli import main

sys.exit(main())
