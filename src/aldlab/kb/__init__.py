"""Stage 1: the ALD knowledge base (schema, loaders, validation, stats, edits)."""

from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import Document, KnowledgeBase

__all__ = ["Document", "KnowledgeBase", "load_kb", "save_kb"]
