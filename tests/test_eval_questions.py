"""Question-set validation and the shipped seed set's coverage and grounding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.evalset import DIFFICULTIES, load_questions
from aldlab.settings import shipped_evalset, shipped_kb_dir

GOOD = {
    "id": "q1",
    "question": "ALD가 뭐야?",
    "topic": "ALD 기본",
    "difficulty": "기본",
    "answerable": True,
    "expect": [["self-limiting", "자기 제한"]],
    "reference": "ALD는 ...",
}

SEED_TOPICS = ["ALD 기본", "Precursor", "Purge", "MFC", "Flow", "Valve", "압력", "챔버", "웨이퍼", "VG12/VG13", "로드락", "플라즈마"]


def write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_loads_valid_file_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD, {**GOOD, "id": "q2", "answerable": False, "expect": []}, ""])
    questions = load_questions(path)
    assert [q.id for q in questions] == ["q1", "q2"]
    assert questions[0].expect == [["self-limiting", "자기 제한"]]
    assert questions[1].reference == "ALD는 ..." and not questions[1].answerable
    assert [q.id for q in load_questions(path, limit=1)] == ["q1"]


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({k: v for k, v in GOOD.items() if k != "topic"}, "topic"),
        ({**GOOD, "answerable": "yes"}, "answerable"),
        ({**GOOD, "expect": ["self-limiting"]}, "expect"),
        ({**GOOD, "expect": [[]]}, "expect"),
        ({**GOOD, "expect": []}, "key-fact"),
        ({**GOOD, "question": ""}, "question"),
        ({**GOOD, "refrence": "x"}, "refrence"),
        ({**GOOD, "reference": 3}, "reference"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, row: dict, needle: str) -> None:
    path = write(tmp_path, [{**GOOD, "id": "ok"}, row])
    with pytest.raises(UserError) as info:
        load_questions(path)
    assert info.value.location() == f"{path}:2"
    assert needle in info.value.en


def test_duplicate_id_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Duplicate id") as info:
        load_questions(write(tmp_path, [GOOD, GOOD]))
    assert info.value.line == 2
    with pytest.raises(UserError) as info:
        load_questions(write(tmp_path, [GOOD, "{not json"]))
    assert info.value.line == 2


def test_seed_set_covers_levels_topics_and_boundary() -> None:
    questions = load_questions(shipped_evalset())
    assert 36 <= len(questions) <= 44
    assert {q.difficulty for q in questions} == set(DIFFICULTIES)
    for topic in SEED_TOPICS:
        assert sum(q.topic == topic for q in questions) >= 2, topic
    boundary = [q for q in questions if not q.answerable]
    assert len(boundary) >= 6
    assert all(q.reference for q in questions if q.answerable)


def _kb_text() -> str:
    texts = []
    for path in sorted((shipped_kb_dir() / "documents").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                texts.append(f"{doc.get('title', '')} {doc['text']} {' '.join(doc.get('keywords', []))}")
    return " ".join(texts).casefold().replace(" ", "")


def test_seed_key_facts_are_stated_in_the_shipped_kb() -> None:
    """Every key-fact group must be satisfiable from the KB, or the metric punishes truth."""
    kb = _kb_text()
    if len(kb) < 10_000:
        pytest.skip("shipped KB not present")
    missing = [
        (q.id, group)
        for q in load_questions(shipped_evalset())
        for group in q.expect
        if not any(alt.casefold().replace(" ", "") in kb for alt in group)
    ]
    assert not missing


def test_one_parser_reads_every_shipped_set_and_the_calibration_uses_it(tmp_path: Path) -> None:
    """seed, holdout and dev share one format; dev's doc_ids (retrieval gold) are part of it."""
    from aldlab.rag import confidence
    from aldlab.settings import REPO_ROOT

    sets = {p.stem: load_questions(p) for p in sorted((REPO_ROOT / "evalsets").glob("*.jsonl"))}
    assert {"seed", "dev", "holdout"} <= set(sets)
    assert all(q.doc_ids for q in sets["dev"] if q.answerable)
    assert confidence.load_questions is load_questions  # rag calibration reads sets with the same parser

    with pytest.raises(UserError) as info:
        load_questions(write(tmp_path, [{**GOOD, "doc_ids": "ald-basics-001"}]))
    assert "doc_ids" in info.value.render() and info.value.line == 1
    row = load_questions(write(tmp_path, [{**GOOD, "doc_ids": ["a-1"]}]))[0]
    assert row.doc_ids == ["a-1"] and row.to_json()["doc_ids"] == ["a-1"]
    assert "doc_ids" not in load_questions(write(tmp_path, [GOOD]))[0].to_json()


def test_a_note_says_why_a_label_changed_and_round_trips(tmp_path: Path) -> None:
    """Relabelled questions (the KB grew and now answers them) carry the reason for readers."""
    row = load_questions(write(tmp_path, [{**GOOD, "note": "  KB의 새 문서가 답함  "}]))[0]
    assert row.note == "KB의 새 문서가 답함" and row.to_json()["note"] == row.note
    assert "note" not in load_questions(write(tmp_path, [GOOD]))[0].to_json()
