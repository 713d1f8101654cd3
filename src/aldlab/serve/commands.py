"""`aldlab serve` (placeholder: the service stage fills this in)."""


def serve_command() -> None:
    """Run the API and web UI."""
