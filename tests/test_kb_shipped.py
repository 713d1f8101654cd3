"""The shipped Korean ALD KB meets its own contract."""

from __future__ import annotations

import re

from aldlab.kb.io import load_kb
from aldlab.kb.stats import compute_stats
from aldlab.kb.validate import validate_kb
from aldlab.settings import shipped_kb_dir

REQUIRED_TOPICS = {
    "ald_basics", "ald_vs_cvd", "ald_window", "precursor", "purge", "mfc", "flow", "valve",
    "pressure", "chamber", "wafer", "vacuum_gauge", "loadlock", "plasma", "equipment",
    "interlock", "troubleshooting",
}


def test_shipped_kb_validates_without_errors_or_warnings() -> None:
    report = validate_kb(load_kb(shipped_kb_dir()))
    assert report.errors == []
    assert report.warnings == [], [w.render() for w in report.warnings[:5]]


def test_shipped_kb_size_and_topic_coverage() -> None:
    kb = load_kb(shipped_kb_dir())
    stats = compute_stats(kb)
    assert stats.documents >= 400
    assert REQUIRED_TOPICS <= set(stats.topics)
    for topic in REQUIRED_TOPICS:
        assert stats.topics[topic] >= 20, topic
    assert all(60 <= len(d.text) <= 400 for d in kb.documents)
    assert all(d.title.strip() and d.source for d in kb.documents)


def test_vacuum_gauges_have_one_definition_everywhere() -> None:
    """VG12 = main process chamber gauge, VG13 = loadlock gauge; never a gate-valve signal."""
    kb = load_kb(shipped_kb_dir())
    wrong = re.compile(r"VG1[23][^.]*(게이트 밸브 (개폐 )?신호|압력을 측정하는 센서가 아니)")
    for doc in kb.documents:
        if doc.id.startswith("vacuum-gauge") and "legacy" in doc.text.casefold():
            continue  # the one document that explains the legacy misdescription
        assert not wrong.search(doc.text), doc.id
        if "VG13" in doc.text and "VG13은 " in doc.text:
            assert "로드락" in doc.text, doc.id
    texts = " ".join(d.text for d in kb.documents)
    assert "VG12" in texts and "VG13" in texts


def test_tma_h2o_chemistry_is_present() -> None:
    kb = load_kb(shipped_kb_dir())
    assert any("TMA" in d.text and "H2O" in d.text and "Al2O3" in d.text for d in kb.documents)


def test_no_sentences_about_the_kb_itself() -> None:
    """Answers quote KB text verbatim, so a sentence about 'this KB' leaks into training targets."""
    kb = load_kb(shipped_kb_dir())
    meta = re.compile(r"aldlab|지식 베이스|이 문서|문서에서는")
    assert [d.id for d in kb.documents if meta.search(d.text)] == []


def test_ion_gauges_are_covered() -> None:
    kb = load_kb(shipped_kb_dir())
    ion = [d for d in kb.documents if "Ion gauge" in d.keywords]
    assert len(ion) >= 3
    assert any("filament" in d.text and "10^-3 Torr" in d.text for d in ion)
    assert "이온 게이지" in kb.synonyms_of("Ion gauge")


def test_precursor_heating_order_has_one_version() -> None:
    """Issue 11: the KB said both 'canister < valve < line' and 'canister < line < valve'."""
    kb = load_kb(shipped_kb_dir())
    texts = {d.id: d.text for d in kb.documents}
    assert not any("Canister보다 밸브, 밸브보다 배관" in t for t in texts.values())
    for doc_id in ("precursor-014", "troubleshooting-013"):
        assert "Canister보다 배관, 배관보다 챔버 앞 ALD 밸브" in texts[doc_id], doc_id


#: Abbreviations and English words fab engineers type for things the shipped KB explains in other
#: words. The unknown-name refusal rule refuses a question naming something no document mentions,
#: so each needs a glossary group (2026-12-07: "LL vent할때 파티클 날리는거 어떻게 줄여요" was refused for 'LL').
ENGINEERS_WORDS = ("LL", "TM", "SV", "SP", "PV", "RPS", "ATM", "THK", "Temp", "Ampoule", "Vacuum", "Exhaust", "Defect")


def test_engineers_abbreviations_are_not_unknown_names() -> None:
    from aldlab.rag.config import RagConfig
    from aldlab.rag.retriever import HybridRetriever

    retriever = HybridRetriever.from_kb(
        load_kb(shipped_kb_dir()), RagConfig(dense_model="none", translation_weight=0.0), show_progress=False
    )
    unknown = {word: retriever.unknown_names(f"{word} 관련 문제 생기면 어떻게 해요?") for word in ENGINEERS_WORDS}
    assert all(not names for names in unknown.values()), {w: n for w, n in unknown.items() if n}
    assert retriever.unknown_names("ASM 장비 LL 벤트") == ["ASM"]  # a vendor is still a name the KB lacks
