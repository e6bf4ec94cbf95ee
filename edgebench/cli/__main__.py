"""`python -m edgebench.cli`: the same as the `edgebench` command."""
from edgebench.cli.app import main

main()
