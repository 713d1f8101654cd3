"""KB statistics: documents per topic and keyword, text lengths."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import mean, median

from aldlab.kb.schema import KnowledgeBase


@dataclass
class KBStats:
    """Numbers `aldlab kb stats` prints (and `--json` emits)."""

    documents: int
    topics: dict[str, int]
    topic_labels: dict[str, str]
    keywords: dict[str, int]
    length_min: int = 0
    length_mean: float = 0.0
    length_median: float = 0.0
    length_max: int = 0
    synonym_groups: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    #: Example questions (`Document.questions`) in all, and documents that have none: those
    #: are found only through their own wording (retrieval) and get no user-style rows (data).
    questions: int = 0
    without_questions: int = 0


def compute_stats(kb: KnowledgeBase) -> KBStats:
    """Count documents per topic (every declared topic, even empty ones) and per keyword."""
    lengths = [len(d.text) for d in kb.documents] or [0]
    topic_counts = Counter(d.topic for d in kb.documents)
    topics = {t: topic_counts.get(t, 0) for t in kb.topics}
    topics.update({t: c for t, c in topic_counts.items() if t not in topics})
    return KBStats(
        documents=len(kb.documents),
        topics=topics,
        topic_labels=dict(kb.topics),
        keywords=dict(Counter(k for d in kb.documents for k in d.keywords).most_common()),
        length_min=min(lengths),
        length_mean=round(mean(lengths), 1),
        length_median=float(median(lengths)),
        length_max=max(lengths),
        synonym_groups=len(kb.synonym_groups),
        sources=dict(Counter(d.source.split(":")[0] for d in kb.documents).most_common()),
        questions=sum(len(d.questions) for d in kb.documents),
        without_questions=sum(not d.questions for d in kb.documents),
    )
