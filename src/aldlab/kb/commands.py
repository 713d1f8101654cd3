"""`aldlab kb ...` (placeholder: the KB stage fills this in)."""

import typer

app = typer.Typer(no_args_is_help=True)
