"""`aldlab kb audit`: restatement clusters and candidate contradictions (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from aldlab.kb.audit import audit_kb, render_markdown
from aldlab.kb.claims import Vocabulary, find_quantities, scales_disagree
from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.settings import shipped_kb_dir

KEYWORDS = ["Carrier gas", "MFC", "Canister", "Valve", "VG12", "Gate Valve", "로드락", "Pump", "sccm", "Torr", "온도"]


def _kb(texts: dict[str, str]) -> KnowledgeBase:
    docs = [Document(id=i, title=i, text=t, keywords=[], topic="flow") for i, t in texts.items()]
    return KnowledgeBase(documents=docs, name="planted", topics={"flow": "Flow"}, keywords=KEYWORDS,
                         synonym_groups=[["Valve", "밸브"], ["로드락", "loadlock"]])


def _same_vectors(kb: KnowledgeBase, groups: list[set[str]]) -> np.ndarray:
    """Fake dense vectors: documents in one group point the same way, others are orthogonal."""
    rows = []
    for n, doc in enumerate(kb.documents):
        vector = np.zeros(len(kb.documents) + len(groups), np.float32)
        group = next((g for g, members in enumerate(groups) if doc.id in members), None)
        vector[len(kb.documents) + group if group is not None else n] = 1.0
        rows.append(vector)
    return np.stack(rows)


PLANTED = {
    "a": "Carrier gas flow는 Canister의 증기를 실어 나르는 유량으로, 보통 50~300 sccm 범위에서 설정한다.",
    "b": "Carrier gas MFC는 수십 sccm 이하의 작은 유량을 쓰므로 sccm 단위로 표기한다.",
    "c": "응축을 막으려면 Canister보다 밸브, 밸브보다 배관의 온도를 높게 설정한다.",
    "d": "온도는 Canister보다 배관, 배관보다 Valve가 점점 높도록 gradient를 둔다.",
    "e": "VG12는 메인 챔버의 압력을 측정하는 진공 게이지다.",
    "f": "VG12는 로드락과 챔버 사이의 게이트 밸브 개폐 상태를 나타내는 신호이며, 압력을 측정하는 센서가 아니다.",
    "g": "로드락 slow pump는 수십에서 100 Torr까지 유지한 뒤 fast pump로 전환한다.",
    "h": "로드락 Pump의 slow에서 fast로의 전환 압력은 수~수십 Torr 영역이 흔하다.",
}


def test_planted_contradictions_are_found() -> None:
    kb = _kb(PLANTED)
    report = audit_kb(kb, _same_vectors(kb, [{"a", "b"}, {"c", "d"}, {"e", "f"}, {"g", "h"}]))
    pairs = {(c.kind, c.left_id, c.right_id) for c in report.contradictions}
    assert ("number", "a", "b") in pairs  # 50~300 sccm vs 수십 sccm 이하
    assert ("number", "g", "h") in pairs  # 수십에서 100 Torr vs 수~수십 Torr
    assert ("order", "c", "d") in pairs  # 밸브 < 배관 vs 배관 < 밸브
    assert ("definition", "e", "f") in pairs  # gauge vs valve signal
    assert report.counts()["contradictions"] == 4
    markdown = render_markdown(report, kb)
    assert "## 모순 후보 / Candidate contradictions" in markdown and "| definition | VG12 | e |" in markdown


def test_consistent_statements_are_not_flagged() -> None:
    kb = _kb({
        "a": "Carrier gas flow는 Canister의 증기를 실어 나르는 유량으로, 보통 50~300 sccm 범위에서 설정한다.",
        "b": "Carrier gas MFC는 수십~수백 sccm의 유량을 쓰므로 sccm 단위로 표기한다.",
        "c": "응축을 막으려면 Canister보다 배관, 배관보다 밸브의 온도를 높게 설정한다.",
        "d": "온도는 Canister보다 배관, 배관보다 Valve가 점점 높도록 gradient를 둔다.",
        "e": "VG12는 메인 챔버의 압력을 측정하는 진공 게이지다.",
        "f": "VG12와 VG13을 게이트 밸브 개폐 신호로 오해하기도 하지만, VG12는 압력을 재는 센서다.",
    })
    report = audit_kb(kb, _same_vectors(kb, [{"a", "b"}, {"c", "d"}, {"e", "f"}]))
    assert report.contradictions == []


def test_restatements_cluster_and_unrelated_documents_do_not() -> None:
    kb = _kb(PLANTED)
    report = audit_kb(kb, _same_vectors(kb, [{"a", "b", "c"}]))
    assert [sorted(c.doc_ids) for c in report.clusters] == [["a", "b", "c"]]
    # numbers are only compared between related documents
    assert not any(c.kind == "number" and {c.left_id, c.right_id} == {"g", "h"} for c in report.contradictions)


def test_quantities_parse_korean_magnitudes_and_mixed_units() -> None:
    (_, purge), = find_quantities("Purge 유량은 수백 sccm에서 수 slm 범위다.")
    assert (purge.low, purge.high) == (200.0, 9000.0)
    (_, low), = find_quantities("수십 sccm 이하의 작은 유량")
    (_, typical), = find_quantities("보통 50~300 sccm")
    assert scales_disagree(low, typical)
    assert find_quantities("공기 중 수분이 응결한다.") == []  # 수분 is moisture, not minutes


def test_shipped_kb_has_no_definition_or_heating_order_conflicts() -> None:
    kb = load_kb(shipped_kb_dir())
    report = audit_kb(kb)  # lexical similarity: no model needed
    assert [c for c in report.contradictions if c.kind == "definition"] == []
    heating = {"precursor-014", "troubleshooting-013", "valve-002", "flow-020"}
    assert not any(c.kind == "order" and {c.left_id, c.right_id} & heating for c in report.contradictions)
    # the contradiction the shipped KB used to have is still caught when planted back
    by_id = kb.by_id()
    by_id["precursor-014"].text = "그래서 Canister보다 밸브, 밸브보다 배관의 온도를 약 10-20°C씩 높게 설정한다."
    again = audit_kb(kb)
    assert any(c.kind == "order" and {c.left_id, c.right_id} == {"precursor-014", "troubleshooting-013"}
               for c in again.contradictions)


def test_audit_finds_vg_definitions_in_legacy_file(legacy_dir: Path) -> None:
    legacy = load_kb(legacy_dir / "docs_ald.json")
    report = audit_kb(legacy)
    vg = [c for c in report.contradictions if c.kind == "definition" and c.subject in {"VG12", "VG13"}]
    flagged = {c.left_id for c in vg} | {c.right_id for c in vg}
    assert {"18", "19", "21", "233", "234"} <= flagged


def test_audit_cli_writes_markdown_and_exits_zero(tmp_path: Path) -> None:
    kb = _kb(PLANTED)
    save_kb(kb, tmp_path / "kb")
    out = tmp_path / "audit.md"
    result = subprocess.run(
        [sys.executable, "-m", "aldlab.cli", "kb", "audit", "--kb", str(tmp_path / "kb"), "--dense-model", "none",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "candidate contradictions" in result.stdout
    text = out.read_text("utf-8")
    assert "| definition | VG12 |" in text and "| order |" in text


def test_vocabulary_does_not_match_inside_longer_words() -> None:
    kb = KnowledgeBase(documents=[], keywords=["Ar", "Aspect ratio"])
    assert Vocabulary(kb).terms("Aspect ratio가 큰 구조와 Arrhenius 식") == {"Aspect ratio"}


def test_false_friends_are_not_claims() -> None:
    """Shapes that used to produce false candidates on the shipped KB."""
    kb = _kb({
        "a": "Gate Valve는 VG13이 읽는 로드락 압력과 Transfer chamber 압력의 차이가 설정값 이내일 때만 열린다.",
        "b": "VG13은 로드락의 압력을 측정하는 진공 게이지다.",
    })
    vocab = Vocabulary(kb)
    from aldlab.kb.claims import definition_claims

    assert "VG13" not in {c.term for c in definition_claims(kb.documents[0], vocab)}
    assert audit_kb(kb, _same_vectors(kb, [{"a", "b"}])).contradictions == []
    (_, step), = find_quantities("배관을 Canister보다 약 10-20°C씩 높게 한다.")
    (_, setpoint), = find_quantities("Canister는 50-80°C로 가열한다.")
    assert step.dimension == "temperature difference" and not scales_disagree(step, setpoint)
