"""`aldlab data ...` (placeholder: the dataset stage fills this in)."""

import typer

app = typer.Typer(no_args_is_help=True)
