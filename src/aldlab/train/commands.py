"""`aldlab train` and `aldlab export` (placeholders: the training stage fills these in)."""


def train_command() -> None:
    """LoRA/QLoRA SFT."""


def export_command() -> None:
    """Merge/export an adapter."""
