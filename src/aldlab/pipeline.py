"""`aldlab pipeline` (placeholder)."""


def pipeline_command() -> None:
    """Run stages 2-4 end to end."""
