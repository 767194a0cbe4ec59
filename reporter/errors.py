"""The error every command raises for bad usage: the CLI's one error boundary (cli.main) prints it as one clear
line and exits 2. Below cli and the commands, so that both import it without importing each other."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit status 2."""
