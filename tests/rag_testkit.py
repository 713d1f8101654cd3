"""Shared helpers for the RAG tests: a tiny KB and a deterministic fake embedder.

(Not a test module: imported by tests/test_rag_*.py.)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from aldlab.kb.io import save_kb
from aldlab.llm.generator import Reply
from aldlab.kb.schema import Document, KnowledgeBase

DOCS = [
    ("tiny-001", "Purge 시간", "purge", ["Purge", "Purge 시간"],
     "Purge 시간이 너무 짧으면 남은 Precursor가 Co-reactant와 기상에서 만나 CVD 반응이 섞이고 파티클이 생긴다."),
    ("tiny-002", "로드락 Vent", "loadlock", ["로드락", "Vent"],
     "로드락 Vent는 건조 N2로 천천히 대기압까지 올리며, 급한 Vent는 웨이퍼 위치 틀어짐과 파티클을 만든다."),
    ("tiny-003", "TMA 전구체", "precursor", ["TMA", "Precursor"],
     "TMA는 상온 증기압이 높은 Precursor라 Canister를 가열하지 않고 vapor draw로 공급한다."),
    ("tiny-004", "MFC Zero drift", "mfc", ["MFC", "Zero drift"],
     "MFC Zero drift는 가스를 흘리지 않을 때 readback이 0에서 벗어나는 현상으로, 밸브를 닫고 영점을 점검한다."),
    ("tiny-005", "VG12 게이지", "vacuum_gauge", ["VG12"],
     "VG12는 공정 챔버의 압력을 재는 capacitance manometer이며 Gate Valve 개방 전 압력 비교에 쓴다."),
    ("tiny-006", "ALD window", "ald_window", ["ALD window", "온도"],
     "ALD window는 GPC가 온도에 거의 무관하게 일정한 공정 온도 구간이다. 너무 낮으면 응축, 높으면 열분해가 생긴다."),
    ("tiny-007", "Argon 가스 순도", "purge", ["Ar"],
     "Argon 가스의 순도가 낮으면 막에 불순물이 섞인다."),
    # exact duplicate text of tiny-001 under another id (legacy KBs have these)
    ("tiny-008", "Purge 시간 (중복)", "purge", ["Purge"],
     "Purge 시간이 너무 짧으면 남은 Precursor가 Co-reactant와 기상에서 만나 CVD 반응이 섞이고 파티클이 생긴다."),
]

SYNONYMS = [
    ["Purge", "퍼지"],
    ["Precursor", "전구체", "프리커서"],
    ["로드락", "Loadlock", "로드 락"],
    ["Ar", "아르곤"],
    ["MFC", "Mass Flow Controller", "유량 제어기"],
]


#: Questions about the tiny KB with the documents that answer them, and off-topic ones: the
#: dev set tests calibrate refusal on.
IN_KB = [
    ("퍼지 시간이 짧으면 어떻게 돼?", ["tiny-001", "tiny-008"]),
    ("로드락 Vent는 어떻게 해?", ["tiny-002"]),
    ("TMA Canister 가열이 필요해?", ["tiny-003"]),
    ("MFC 영점 drift 점검 방법", ["tiny-004"]),
    ("VG12는 무슨 게이지야?", ["tiny-005"]),
    ("ALD window 온도 구간은?", ["tiny-006"]),
    ("Argon 순도가 낮으면?", ["tiny-007"]),
    ("Precursor 증기압이 높으면 가열하지 않나?", ["tiny-003"]),
]
OFF_TOPIC = [
    "내일 서울 날씨 어때?",
    "김치찌개 끓이는 법 알려줘",
    "삼성전자 주식 사도 될까?",
    "손흥민 골 몇 개 넣었어?",
    "제주도 여행 코스 추천",
    "고양이가 밥을 안 먹어요",
    "비트코인 전망은?",
    "파스타 면 삶는 시간",
]


def write_dev_set(path: Path) -> Path:
    """IN_KB + OFF_TOPIC as an eval-set file (the calibration dev set of the tiny KB)."""
    rows = [
        {"id": f"d{i}", "question": q, "answerable": True, "doc_ids": ids, "expect": [[q.split()[0]]], "topic": "t",
         "difficulty": "기본"}
        for i, (q, ids) in enumerate(IN_KB)
    ] + [
        {"id": f"o{i}", "question": q, "answerable": False, "doc_ids": [], "expect": [], "topic": "off", "difficulty": "기본"}
        for i, q in enumerate(OFF_TOPIC)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_kb() -> KnowledgeBase:
    docs = [Document(id=i, title=t, topic=tp, keywords=k, text=x) for i, t, tp, k, x in DOCS]
    keywords = sorted({k for d in docs for k in d.keywords})
    return KnowledgeBase(documents=docs, name="tiny", keywords=keywords, synonym_groups=SYNONYMS,
                         topics={d.topic: d.topic for d in docs})


def write_tiny_kb(root: Path) -> Path:
    save_kb(tiny_kb(), root)
    return root


class FakeEmbedder:
    """Character-trigram hashing vectors: similar strings get similar unit vectors, instantly."""

    name = "fake"
    dim = 256

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = f"  {text.casefold()}  "
        for i in range(len(t) - 2):
            h = int.from_bytes(hashlib.md5(t[i : i + 3].encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-9)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts])

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if progress:
            progress(len(texts))
        return np.stack([self._vec(t) for t in texts])


def install_fake_embedder() -> None:
    """Make `dense_model="fake"` resolve to FakeEmbedder (the embedder cache is checked first)."""
    from aldlab.rag import dense

    dense._CACHE["fake"] = FakeEmbedder()


class RecordingGenerator:
    """Generator protocol stand-in: records every call, answers with a citation.

    `stop_reason` is what `reply` and `stream` report ("length" stands for a reply cut at
    max_new_tokens)."""

    def __init__(self, reply: str | None = None, stop_reason: str = "stop") -> None:
        self.calls: list[dict] = []
        self.fixed_reply = reply
        self.stop_reason = stop_reason

    def generate(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        self.calls.append({"messages": messages, "max_new_tokens": max_new_tokens, "adapter": adapter})
        if self.fixed_reply is not None:
            return self.fixed_reply
        # The prompt lists the most relevant passage last (prompts.format_context).
        found = re.findall(r"\[(tiny-\d+)\]", messages[-1]["content"])
        return f"답변입니다 [{found[-1] if found else 'none'}]"

    def reply(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        return Reply(self.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter), self.stop_reason)

    def stream(self, messages, *, max_new_tokens=256, adapter=None):  # noqa: ANN001, ANN201
        text = self.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter)
        yield from (text[i : i + 3] for i in range(0, len(text), 3))
        return self.stop_reason

    def models(self) -> list[str]:
        return ["base", "ft"]
