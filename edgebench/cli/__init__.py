"""The command line: thin Typer commands over `compare`, `gate` and `report`."""
from edgebench.cli.app import main

__all__ = ["main"]
