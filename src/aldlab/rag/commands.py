"""`aldlab ask` / `aldlab chat` (placeholders: the RAG stage fills these in)."""


def ask_command() -> None:
    """Answer one question."""


def chat_command() -> None:
    """Interactive chat."""
