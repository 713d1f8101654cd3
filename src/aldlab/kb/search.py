"""Plain keyword search over a KB, with synonym expansion.

This is the dependency-free lookup behind `aldlab kb search` (find a document to edit,
check what the KB says about a term); ranked hybrid retrieval for answering lives in
`aldlab.rag`.
"""

from __future__ import annotations

from aldlab.kb.schema import Document, KnowledgeBase


def search_documents(kb: KnowledgeBase, query: str, limit: int = 10) -> list[tuple[Document, float]]:
    """Documents scored by how many query terms (or their synonyms) they contain.

    A keyword-field match counts double: a document tagged with the term is about it.
    """
    terms = [t for t in query.split() if t.strip()]
    scored: list[tuple[Document, float]] = []
    for doc in kb.documents:
        haystack = f"{doc.id} {doc.title} {doc.text}".casefold()
        tags = {k.casefold() for k in doc.keywords}
        score = 0.0
        for term in terms:
            spellings = [s.casefold() for s in kb.synonyms_of(term)]
            if any(s in tags for s in spellings):
                score += 2.0
            elif any(s in haystack for s in spellings):
                score += 1.0
        if score > 0:
            scored.append((doc, score))
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    return scored[:limit]
