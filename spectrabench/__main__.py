"""`python -m spectrabench` runs the CLI."""

from spectrabench.cli.app import main

main()
