"""`aldlab eval` (placeholder: the evaluation stage fills this in)."""


def eval_command() -> None:
    """Evaluate systems on a question set."""
