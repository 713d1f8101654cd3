"""Stage 1: the ALD knowledge base (schema, loaders, validation, stats, edits)."""

from aldlab.kb.schema import Document, KnowledgeBase, load_kb, save_kb

__all__ = ["Document", "KnowledgeBase", "load_kb", "save_kb"]
