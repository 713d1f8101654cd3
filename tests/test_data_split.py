"""Near-duplicate join and the leakage-free split, on small hand-made examples."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aldlab.data.dedup import dedup_within, jaccard, ngrams, normalize, similar_pairs
from aldlab.data.split import measure_leakage, split_without_leakage


@dataclass
class Row:
    question: str
    answer: str
    doc_ids: list[str]
    group: str
    kind: str = "kb"
    context_ids: list[str] = field(default_factory=list)

    @property
    def is_refusal(self) -> bool:
        return self.kind == "unanswerable"


def test_similar_pairs_is_exact_against_all_pairs() -> None:
    rng = random.Random(0)
    stems = ["MFC가 뭐야?", "로드락 압력이 너무 높으면 어떻게 되나요?", "ALD와 CVD의 차이는?", "Purge 시간이 짧으면?"]
    texts = [rng.choice(stems) + "".join(rng.choice("가나다ABC ") for _ in range(rng.randint(0, 8))) for _ in range(400)]
    sets = [ngrams(t) for t in texts]
    for threshold in (0.6, 0.8, 0.95):
        fast = {(i, j) for i, j, _ in similar_pairs(sets, sets, threshold)}
        slow = {(i, j) for i in range(len(sets)) for j in range(len(sets)) if jaccard(sets[i], sets[j]) >= threshold}
        assert fast == slow


def test_normalize_and_dedup_within() -> None:
    assert normalize("MFC가  뭐야?") == normalize("mfc가 뭐야") == "mfc가뭐야"
    kept, dropped = dedup_within(["MFC가 뭐야?", "mfc가 뭐야", "VG12가 뭐야?"], normalize)
    assert kept == ["MFC가 뭐야?", "VG12가 뭐야?"] and dropped == 1


def rows_for(n_docs: int) -> list[Row]:
    rows = []
    for d in range(n_docs):
        for variant in ("가 뭐야?", "는 무엇인가요?", "에 대해 알려줘."):
            rows.append(Row(f"장비{d:03d} 부품{d * 7 % 13}{variant}", f"장비{d:03d}는 {d * 31 % 97}번 공정에서 쓰는 부품이다.", [f"d{d}"], f"docs:d{d}"))
    return rows


def test_groups_never_straddle_and_eval_gets_its_share() -> None:
    rows = rows_for(60)
    rows.append(Row("장비001과 장비002의 관계는?", "둘 다 쓰인다.", ["d1", "d2"], "docs:d1|d2", kind="combo"))
    train, evals, report = split_without_leakage(rows, 0.2, seed=1)
    assert 0.15 <= len(evals) / (len(train) + len(evals) + report.dropped_straddling) <= 0.25
    groups_train = {r.group for r in train}
    assert not groups_train & {r.group for r in evals}
    assert report.total == 0


def test_cross_split_duplicates_are_dropped_from_train() -> None:
    rows = rows_for(30)
    # The same question answered by two different documents: must not sit on both sides.
    rows += [Row("MFC가 뭐야?", f"MFC는 유량 제어기다 (문서 {d}).", [f"m{d}"], f"docs:m{d}") for d in range(10)]
    train, evals, report = split_without_leakage(rows, 0.3, seed=2)
    again = measure_leakage(train, evals)
    assert again.total == 0 and report.total == 0
    if any(r.question == "MFC가 뭐야?" for r in evals):
        assert not any(r.question == "MFC가 뭐야?" for r in train)
        assert report.dropped_train_exact_dup >= 1


def test_measure_leakage_counts_what_it_sees() -> None:
    train = [Row("MFC가 뭐야?", "유량 제어기다.", ["a"], "g1"), Row("로드락이 뭐야?", "중간 챔버다.", ["b"], "g2")]
    evals = [Row("mfc가 뭐야", "다른 답", ["c"], "g3"), Row("VG12가 뭐야?", "중간 챔버다!", ["b"], "g2")]
    report = measure_leakage(train, evals)
    assert report.exact_dup_questions == 1 and report.exact_dup_answers == 1
    assert report.shared_docs == 1 and report.shared_groups == 1


def test_refusal_answers_do_not_count_as_leaks() -> None:
    train = [Row("날씨 어때?", "관련 정보가 부족합니다.", [], "off:w", kind="unanswerable")]
    evals = [Row("주식 살까?", "관련 정보가 부족합니다.", [], "off:s", kind="unanswerable")]
    assert measure_leakage(train, evals).total == 0


def test_minhash_path_finds_the_same_pairs(monkeypatch) -> None:
    from aldlab.data import dedup

    rng = random.Random(1)
    stems = ["로드락 압력이 너무 높으면 어떻게 되나요?", "MFC Full scale 선정 기준은 무엇인가요?", "Purge 시간이 짧으면?"]
    texts = [rng.choice(stems) + "".join(rng.choice("가나다ABC ") for _ in range(rng.randint(0, 6))) for _ in range(300)]
    sets = [ngrams(t) for t in texts]
    exact = similar_pairs(sets, sets, 0.8)
    monkeypatch.setattr(dedup, "EXACT_JOIN_MAX_PAIRS", 0)
    assert similar_pairs(sets, sets, 0.8) == exact
