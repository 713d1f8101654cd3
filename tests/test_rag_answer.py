"""Assistant: calibrated refusal without the LLM, citations, follow-ups, context-only, closed-book."""

from __future__ import annotations

from pathlib import Path

import pytest
from rag_testkit import IN_KB, OFF_TOPIC, RecordingGenerator, install_fake_embedder, tiny_kb, write_dev_set, write_tiny_kb

from aldlab.rag.types import AskOptions
from aldlab import prompts
from aldlab.rag.assistant import Assistant
from aldlab.rag.build import build_retriever
from aldlab.rag.citations import SUPPORT_THRESHOLD, extract_citations, find_citations, supporting_passages
from aldlab.rag.config import RagConfig
from aldlab.rag.types import Answer, Passage


@pytest.fixture()
def assistant(tmp_path: Path) -> Assistant:
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=write_dev_set(tmp_path / "dev.jsonl"))
    kb = tiny_kb()
    retriever = build_retriever(kb, config, show_progress=False)
    return Assistant(kb, retriever, RecordingGenerator(), config)


def test_calibration_is_fitted_on_the_dev_set_and_stored_with_the_index(assistant: Assistant) -> None:
    calibration = assistant.retriever.calibration
    assert calibration.fitted_on["questions"] == len(IN_KB) + len(OFF_TOPIC)
    assert (assistant.retriever.index.cache_dir / "calibration.json").exists()
    assert 0.0 < assistant.retriever.threshold < 1.0
    assert 0.0 <= calibration.reliability["ece"] <= 1.0


@pytest.mark.parametrize("question", ["오늘 부산 날씨는 맑아?", "된장찌개 레시피 알려줘", "코스피 지수 전망 알려줘"])
def test_off_topic_is_refused_without_calling_the_llm(assistant: Assistant, question: str) -> None:
    answer = assistant.answer(question)
    assert answer.refused and prompts.is_refusal(answer.text)
    assert answer.text.startswith(prompts.REFUSAL)
    assert answer.confidence < assistant.retriever.threshold
    assert answer.citations == []
    assert assistant.generator.calls == []  # type: ignore[attr-defined]


def test_in_kb_question_is_answered_with_citations(assistant: Assistant) -> None:
    answer = assistant.answer("로드락 Vent를 급하게 하면 무슨 문제가 있어?", AskOptions(model="ft", max_new_tokens=17))
    assert not answer.refused and answer.used_retrieval
    assert answer.passages[0].id == "tiny-002"
    assert answer.citations == ["tiny-002"]
    assert answer.confidence >= assistant.retriever.threshold
    call = assistant.generator.calls[-1]  # type: ignore[attr-defined]
    assert call["adapter"] == "ft" and call["max_new_tokens"] == 17
    expected = prompts.build_messages("로드락 Vent를 급하게 하면 무슨 문제가 있어?", answer.passages)
    assert call["messages"] == expected  # the one prompt module, nothing hand-built
    assert answer.latency_s > 0


def test_base_model_is_requested_with_adapter_none(assistant: Assistant) -> None:
    assistant.answer("TMA Canister 가열")
    assert assistant.generator.calls[-1]["adapter"] is None  # type: ignore[attr-defined]


def test_context_only_never_calls_the_llm(assistant: Assistant) -> None:
    answer = assistant.answer("VG12 게이지", AskOptions(context_only=True, top_k=2))
    assert answer.passages[0].id == "tiny-005" and len(answer.passages) == 2
    assert "[tiny-005]" in answer.text
    assert assistant.generator.calls == []  # type: ignore[attr-defined]


def test_closed_book_uses_the_bare_question(assistant: Assistant) -> None:
    answer = assistant.answer("ALD window가 뭐야?", AskOptions(use_retrieval=False))
    assert not answer.used_retrieval and answer.passages == []
    assert assistant.generator.calls[-1]["messages"] == prompts.build_messages("ALD window가 뭐야?", None)  # type: ignore[attr-defined]


def test_follow_up_pronoun_is_resolved_from_history(assistant: Assistant) -> None:
    history = [
        {"role": "user", "content": "로드락 Vent 절차 알려줘"},
        {"role": "assistant", "content": "건조 N2로 천천히 올립니다 [tiny-002]"},
    ]
    rewritten = assistant.rewrite_followup("그거 왜 천천히 해야 돼?", history)
    assert "로드락" in rewritten and "그거" not in rewritten
    answer = assistant.answer("그거 왜 천천히 해야 돼?", AskOptions(history=tuple(history)))
    assert not answer.refused and answer.passages[0].id == "tiny-002"
    # the model sees the previous turns too
    assert assistant.generator.calls[-1]["messages"][1:3] == history  # type: ignore[attr-defined]
    # a self-contained question is left alone
    assert assistant.rewrite_followup("VG12는 뭐야?", history) == "VG12는 뭐야?"


def test_stream_answer_yields_pieces_then_the_answer(assistant: Assistant) -> None:
    items = list(assistant.stream_answer("MFC Zero drift 점검"))
    assert isinstance(items[-1], Answer)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == items[-1].text
    refusal = list(assistant.stream_answer("주말 날씨 알려줘"))
    assert refusal[-1].refused and refusal[0] == refusal[-1].text


def test_citations_are_only_what_the_answer_cites_or_is_supported_by() -> None:
    passages = [Passage(id="a-1", title="A", text="x"), Passage(id="b-2", title="B", text="y")]
    assert extract_citations("근거는 [b-2] 입니다 [zzz]", passages) == ["b-2"]
    assert extract_citations("b-2 문서에 따르면", passages) == ["b-2"]
    # Nothing cited and nothing supported: no citation, not "all the given passages".
    assert extract_citations("인용 없음", passages) == []


SUPPORT_PASSAGES = [
    Passage(id="purge-1", title="퍼지", text="퍼지 시간이 짧으면 남은 전구체가 반응물과 기상에서 만나 CVD성 기생 증착이 생기고 두께 균일도가 나빠진다."),
    Passage(id="tma-1", title="TMA", text="TMA는 증기압이 높아 캐니스터를 가열하지 않고 상온에서 공급한다."),
]


def test_a_sentence_taken_from_a_passage_cites_it_without_brackets() -> None:
    answer = "퍼지 시간이 짧으면 남은 전구체가 반응물과 만나 기생 증착이 생기고 균일도가 나빠집니다."
    details = find_citations(answer, SUPPORT_PASSAGES)
    assert [(c.id, c.how) for c in details] == [("purge-1", "overlap")]
    assert details[0].support >= SUPPORT_THRESHOLD


def test_unrelated_or_numeric_text_cites_nothing() -> None:
    # the base model's runaway list from issue 16: no passage supports it
    salad = "길게는 100 ms, 짧게는 10 ms, 20 ms, 30 ms, 40 ms, 50 ms 정도입니다."
    assert extract_citations(salad, SUPPORT_PASSAGES) == []
    # a sentence sharing one word with a passage is not supported by it
    assert extract_citations("퍼지 가스 배관의 피팅을 교체하고 누설 시험을 합니다.", SUPPORT_PASSAGES) == []


def test_a_sentence_is_credited_to_its_best_passage_only() -> None:
    near = Passage(id="purge-2", title="퍼지2", text="퍼지 시간이 짧으면 남은 전구체가 반응물과 기상에서 만나 증착이 생길 수 있다.")
    text = "퍼지 시간이 짧으면 남은 전구체가 반응물과 기상에서 만나 CVD성 기생 증착이 생긴다."
    assert supporting_passages(text, [near])["purge-2"] >= SUPPORT_THRESHOLD  # alone, it would count
    assert extract_citations(text, [near, *SUPPORT_PASSAGES]) == ["purge-1"]


def test_uncited_generated_answer_has_no_citations(tmp_path: Path) -> None:
    """Without the passage fallback (which would show the best passage instead: "unsupported")."""
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=write_dev_set(tmp_path / "dev.jsonl"),
                       passage_fallback=False)
    kb = tiny_kb()
    generator = RecordingGenerator(reply="길게는 100 ms, 짧게는 10 ms, 20 ms, 30 ms 입니다")
    assistant = Assistant(kb, build_retriever(kb, config, show_progress=False), generator, config)
    answer = assistant.answer("퍼지 시간이 짧으면 어떻게 돼?")
    assert not answer.refused and answer.passages  # contexts were given ...
    assert answer.citations == [] and answer.citation_details == []  # ... but none is cited
    assert answer.to_json()["citation_details"] == []


def test_context_only_lists_contexts_not_citations(assistant: Assistant) -> None:
    answer = assistant.answer("VG12 게이지", AskOptions(context_only=True, top_k=2))
    assert answer.passages and answer.citations == []


def test_from_config_builds_lazily_and_refuses_without_loading_a_model(tmp_path: Path) -> None:
    install_fake_embedder()
    kb_dir = write_tiny_kb(tmp_path / "kb")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=write_dev_set(tmp_path / "dev.jsonl"))
    assistant = Assistant.from_config(kb_dir, config, model_name="/nonexistent/model", show_progress=False)
    assert assistant.answer("내일 날씨 어때?").refused  # no model load attempted
    assert assistant._generator is None


# ---------------------------------------------------------------- names the KB never mentions
def test_name_terms_are_identifiers_not_plain_words() -> None:
    from aldlab.rag.tokenize import name_terms

    found = [w for w, _ in name_terms("What is ASM Pulsar E-2041 HfO2 purge sccm 300mm 30kVA 2025년 self-limiting?")]
    # Capitalised or letter+digit terms are names; plain lower-case words, numbers and the
    # English question word are not; "300mm" is a number with a unit: only the unit is checked.
    assert found == ["ASM", "Pulsar", "E-2041", "HfO2", "300mm", "30kVA"]
    assert dict(name_terms("30kVA 300mm")) == {"30kVA": "kva", "300mm": "mm"}


def test_a_question_naming_what_the_kb_never_mentions_is_refused_before_the_llm(assistant: Assistant) -> None:
    # Everything else in the question is on topic (loadlock vent), so retrieval is confident.
    question = "Pulsar 장비에서 로드락 Vent는 어떻게 해?"
    assert assistant.search(question).confidence >= assistant.retriever.threshold
    answer = assistant.answer(question)
    assert answer.refused and answer.text.startswith(prompts.REFUSAL)
    assert "'Pulsar'" in answer.text  # the reason names what is missing
    assert assistant.generator.calls == []  # type: ignore[attr-defined]


def test_names_the_kb_has_in_any_case_or_as_a_synonym_are_not_unknown(assistant: Assistant) -> None:
    retriever = assistant.retriever
    assert retriever.unknown_names("VG12는 무슨 게이지야?") == []
    assert retriever.unknown_names("tma Canister 가열은?") == []
    assert retriever.unknown_names("Argon 순도") == []  # synonym group member (Ar)
    assert retriever.unknown_names("ALD window, ASM 장비") == ["ASM"]


def test_batched_eval_refuses_the_same_questions_as_the_service(assistant: Assistant) -> None:
    from aldlab.eval.batch import BatchAnswerer

    question = "Pulsar 장비에서 로드락 Vent는 어떻게 해?"
    [batched] = BatchAnswerer(assistant).answer_batch([question], AskOptions(model="ft"))
    assert batched.refused and batched.text == assistant.answer(question).text


def test_the_threshold_is_chosen_without_questions_already_refused_for_unknown_names() -> None:
    from aldlab.rag.confidence import QueryFeatures, fit_calibration

    features = [QueryFeatures(0.9, 8.0, 1.0), QueryFeatures(0.88, 7.0, 1.0), QueryFeatures(0.7, 1.0, 0.2),
                QueryFeatures(0.72, 1.5, 0.3), QueryFeatures(0.95, 9.0, 1.0)]
    hits = [True, True, False, False, False]
    answerable = [True, True, False, False, False]
    # The last question is unanswerable but scores like an answerable one: it names a vendor.
    with_it = fit_calibration(features, hits, answerable)
    without = fit_calibration(features, hits, answerable, threshold_on=[True, True, True, True, False])
    assert without.threshold < with_it.threshold


def test_a_written_id_whose_passage_does_not_support_the_answer_is_not_a_citation() -> None:
    # The sentence comes from purge-1, but the model wrote the neighbouring context's id.
    text = "퍼지 시간이 짧으면 남은 전구체가 반응물과 기상에서 만나 CVD성 기생 증착이 생긴다 [tma-1]."
    details = find_citations(text, SUPPORT_PASSAGES)
    assert [(c.id, c.how) for c in details] == [("purge-1", "overlap")]
    # written and supported: kept as the bracketed citation
    right = text.replace("[tma-1]", "[purge-1]")
    assert [(c.id, c.how) for c in find_citations(right, SUPPORT_PASSAGES)] == [("purge-1", "bracket")]
    # too short to check: the written id is taken at its word
    assert extract_citations("[tma-1] 참고.", SUPPORT_PASSAGES) == ["tma-1"]


@pytest.mark.parametrize(
    ("text", "echo"),
    [
        ("CMP 공정에서 슬러리 pH는 어떻게 관리해?", True),
        ("S2 인증을 받으려면 어떤 서류가 필요해?", True),  # part of the question
        ("CMP 공정에서 슬러리 pH는 어떻게 관리해? [flow-001]", True),
        ("CMP 공정에서 슬러리 pH는 pH 미터로 매 로트 측정해 관리한다.", False),
        ("관리해?", False),  # too short to judge
    ],
)
def test_an_answer_that_only_repeats_the_question_is_an_echo(text: str, echo: bool) -> None:
    from aldlab.rag.refusal import echoes_question

    question = "CMP 공정에서 슬러리 pH는 어떻게 관리해?" if "CMP" in text or len(text) < 6 else "SEMI S2 인증을 받으려면 어떤 서류가 필요해?"
    assert echoes_question(text, question) is echo


def test_an_echoed_question_is_shown_as_the_refusal(tmp_path: Path) -> None:
    from aldlab.rag.refusal import settle_generated

    text, refused = settle_generated("로드락 Vent는 어떻게 해?", "로드락 Vent는 어떻게 해?")
    assert refused and text.startswith(prompts.REFUSAL)
    assert settle_generated("로드락은 천천히 Vent한다 [tiny-002]", "로드락 Vent는 어떻게 해?") == (
        "로드락은 천천히 Vent한다 [tiny-002]", False)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # a reason that says what is missing stays (first sentence only)
        ("관련 정보가 부족합니다. 참고 문서에 PM 이력에 대한 내용이 없습니다. 참고 문서에 PM 이력에 대한",
         "관련 정보가 부족합니다. 참고 문서에 PM 이력에 대한 내용이 없습니다."),
        # the question written back after the phrase
        ("관련 정보가 부족합니다. 참고 문서에는 ALD 장비 가동률이 몇 %였는지 알려주세요.",
         "관련 정보가 부족합니다. 참고 문서에서 이 질문에 답할 근거를 찾지 못했습니다."),
        # a copied passage sentence with its citation
        ("관련 정보가 부족합니다. 참고 문서에 PM, Canister 교체 이벤트와 대조하면 원인이 드러나지 않는다. [troubleshooting-001]",
         "관련 정보가 부족합니다. 참고 문서에서 이 질문에 답할 근거를 찾지 못했습니다."),
        # the bare phrase gets a reason
        ("관련 정보가 부족합니다", "관련 정보가 부족합니다. 참고 문서에서 이 질문에 답할 근거를 찾지 못했습니다."),
    ],
)
def test_a_model_refusal_keeps_only_a_reason_that_reads_as_one(text: str, shown: str) -> None:
    from aldlab.rag.refusal import settle_generated

    assert settle_generated(text, "지난주 2라인 ALD 장비 가동률은?") == (shown, True)


def test_a_closed_book_refusal_does_not_mention_passages() -> None:
    from aldlab.rag.refusal import CLOSED_BOOK_REASON, settle_generated

    text, refused = settle_generated("관련 정보가 부족합니다. 질문: ALD?", "ALD?", with_context=False)
    assert refused and text == prompts.refusal_answer(CLOSED_BOOK_REASON)


def test_a_written_id_that_is_not_the_source_is_replaced_in_the_text() -> None:
    from aldlab.rag.citations import align_written_citations
    from aldlab.rag.types import Citation

    ids = {"purge-012", "interlock-021", "valve-001"}
    cited = [Citation("purge-012", "overlap", 1.0)]
    text = "N2는 값이 싸서 Purge 가스로 쓴다. [interlock-021]"
    assert align_written_citations(text, cited, ids) == "N2는 값이 싸서 Purge 가스로 쓴다. [purge-012]"
    # a written id that checks out stays; bracketed text that is no KB id stays
    ok = [Citation("valve-001", "bracket", 0.9)]
    assert align_written_citations("밸브 [valve-001] 유량 [sccm]", ok, ids) == "밸브 [valve-001] 유량 [sccm]"
    # nothing supported: the wrong tag goes
    assert align_written_citations("짧은 답 [interlock-021].", [Citation("valve-001", "bracket", 0.0)], ids) == "짧은 답."


def test_the_answer_text_cites_what_the_citation_list_shows(assistant: Assistant) -> None:
    from rag_testkit import RecordingGenerator

    passages = assistant.retriever.search("로드락 Vent를 급하게 하면 무슨 문제가 있어?").passages
    source = passages[0]
    other = next(d.id for d in assistant.kb.documents if d.id not in {p.id for p in passages})
    assistant = Assistant(assistant.kb, assistant.retriever, RecordingGenerator(reply=f"{source.text} [{other}]"),
                          assistant.config)
    answer = assistant.answer("로드락 Vent를 급하게 하면 무슨 문제가 있어?", AskOptions(model="ft"))
    assert f"[{other}]" not in answer.text and f"[{source.id}]" in answer.text
    assert source.id in answer.citations


def test_calibration_can_be_fitted_on_several_question_sets(tmp_path: Path) -> None:
    """dev (KB wording) and user-dev (users' wording) together: one fit, one hash of both."""
    from aldlab.rag.build import calibration_sets
    from aldlab.rag.confidence import sets_sha256

    install_fake_embedder()
    first, second = write_dev_set(tmp_path / "dev.jsonl"), write_dev_set(tmp_path / "user-dev.jsonl")
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", dev_set=[first, second])
    assert calibration_sets(config) == [first, second]
    retriever = build_retriever(tiny_kb(), config, show_progress=False)
    fitted = retriever.calibration.fitted_on
    assert fitted["dev_sha256"] == sets_sha256([first, second]) != sets_sha256([first])
    assert str(first) in fitted["dev_set"] and str(second) in fitted["dev_set"]
    assert calibration_sets(RagConfig(dense_model="fake", index_dir=tmp_path / "i2"))[-1].name == "user-dev.jsonl"


def test_the_best_passage_replaces_a_refusal_or_an_answer_from_another_passage(tmp_path: Path) -> None:
    """Never worse than the search box: retrieval passed the gate, so a model refusal or an
    answer copied from a neighbour becomes the best passage verbatim, labelled as such."""
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0)
    kb = tiny_kb()
    retriever = build_retriever(kb, config, show_progress=False)
    assistant = Assistant(kb, retriever, RecordingGenerator(), config)
    plan = assistant.plan("로드락 Vent를 급하게 하면 무슨 문제가 있어?")
    best, other = plan.passages[0], plan.passages[-1]
    declined = assistant.settle(plan, "관련 정보가 부족합니다. 참고 문서에 없습니다.")
    assert not declined.refused and declined.fallback == "model_refused"
    assert declined.text == f"{best.text} [{best.id}]" and declined.citations == [best.id]
    copied = assistant.settle(plan, f"{other.text} [{other.id}]")
    assert copied.fallback == "other_passage" and copied.text.startswith(best.text)
    own = assistant.settle(plan, f"{best.text} [{best.id}]")
    assert own.fallback == "" and own.citations == [best.id]
    # The first sentence of the best passage, copied and stopped: the whole passage is shown.
    window = assistant.plan("ALD window 온도 구간은?")
    best = window.passages[0]
    first = best.text.split(". ")[0] + "."
    assert best.id == "tiny-006" and first != best.text
    part = assistant.settle(window, f"{first} [{best.id}]")
    assert part.fallback == "partial_copy" and part.text == f"{best.text} [{best.id}]"
    written = assistant.settle(window, f"{first} 그래서 온도를 지킨다. [{best.id}]")
    assert written.fallback == ""  # its own words: the model's answer stands
    # Text no retrieved passage supports (its [id] is not a citation): invented, so the passage.
    invented = assistant.settle(window, f"식량의 크기는 트렌치와 홀 사이에 큰 차이가 없으며 농사는 계절마다 다르다. [{best.id}]")
    assert invented.fallback == "unsupported" and invented.text == f"{best.text} [{best.id}]"
    off = Assistant(kb, retriever, RecordingGenerator(), RagConfig(dense_model="fake", index_dir=tmp_path / "index",
                                                                  refusal_threshold=0.0, passage_fallback=False))
    assert off.settle(off.plan("로드락 Vent를 급하게 하면 무슨 문제가 있어?"), "관련 정보가 부족합니다.").refused


def test_the_answer_carries_the_generators_stop_reason(tmp_path: Path) -> None:
    """A cut reply is "length" streamed or not; a refusal or the passage fallback shows a
    complete text, so it is "stop" whatever the model's reply was (issue 22)."""
    install_fake_embedder()
    config = RagConfig(dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0)
    kb = tiny_kb()
    retriever = build_retriever(kb, config, show_progress=False)
    question = "로드락 Vent를 급하게 하면 무슨 문제가 있어?"
    cut = Assistant(kb, retriever, RecordingGenerator(stop_reason="length"), config)
    assert cut.answer(question, AskOptions(model="ft")).stop_reason == "length"
    streamed = [item for item in cut.stream_answer(question, AskOptions(model="ft")) if isinstance(item, Answer)]
    assert streamed[-1].stop_reason == "length"
    closed_book = cut.answer(question, AskOptions(model="ft", use_retrieval=False))
    assert closed_book.stop_reason == "length"
    ended = Assistant(kb, retriever, RecordingGenerator(), config)
    assert ended.answer(question, AskOptions(model="ft")).stop_reason == "stop"
    plan = cut.plan(question)
    declined = cut.settle(plan, "관련 정보가 부족합니다. 참고 문서에 없습니다.", stop_reason="length")
    assert declined.fallback == "model_refused" and declined.stop_reason == "stop"
    other = plan.passages[-1]
    copied = cut.settle(plan, f"{other.text} [{other.id}]", stop_reason="length")
    assert copied.fallback == "other_passage" and copied.stop_reason == "stop"
    strict = Assistant(kb, retriever, RecordingGenerator(), RagConfig(
        dense_model="fake", index_dir=tmp_path / "index", refusal_threshold=0.0, passage_fallback=False))
    refused = strict.settle(strict.plan(question), "관련 정보가 부족합니다.", stop_reason="length")
    assert refused.refused and refused.stop_reason == "stop"


def test_a_question_about_one_site_is_refused_before_the_model_with_its_reason(assistant: Assistant) -> None:
    answer = assistant.answer("우리 팹 Purge 시간 스펙 상하한 몇이야?")
    assert answer.refused and "우리 팹" in answer.text


def test_an_english_question_is_told_in_both_languages_that_questions_are_answered_in_korean(assistant: Assistant) -> None:
    from aldlab.rag.refusal import asked_in_english

    answer = assistant.answer("What is the weather in Seoul today?")
    assert answer.refused and "This assistant answers questions asked in Korean" in answer.text and "한국어" in answer.text
    assert asked_in_english("How long should the purge be?") and not asked_in_english("VG12 게이지 역할")
    assert not asked_in_english("ALD MFC")  # two words: a keyword search, not a sentence


def test_a_citation_cut_by_the_token_limit_is_finished_or_dropped() -> None:
    from aldlab.rag.citations import close_cut_citation
    from aldlab.rag.types import Citation

    cited = [Citation("interlock-004", "overlap", 0.9), Citation("interlock-009", "overlap", 0.7)]
    assert close_cut_citation("인터락이 걸린다. [interlock-00", cited[:1]) == "인터락이 걸린다. [interlock-004]"
    # an ambiguous or empty prefix takes the best-supported cited passage
    assert close_cut_citation("인터락이 걸린다. [interlock-0", cited) == "인터락이 걸린다. [interlock-004]"
    assert close_cut_citation("인터락이 걸린다. [", cited) == "인터락이 걸린다. [interlock-004]"
    assert close_cut_citation("인터락이 걸린다. [inter", []) == "인터락이 걸린다."
    # finished tags and bracketed units are left alone
    assert close_cut_citation("걸린다. [interlock-004]", cited) == "걸린다. [interlock-004]"
    assert close_cut_citation("유량 [sccm] 단위", cited) == "유량 [sccm] 단위"


def test_a_written_neighbour_that_shares_only_the_topic_words_is_not_the_source() -> None:
    # Copied whole from the first passage, tagged with the second, which shares its topic words
    # (share 0.6 or more, but far below the copied passage's 1.0): the copied passage is the source.
    source = Passage(id="plasma-9", title="반사 전력", text="Reflected power는 매칭이 맞지 않아 발생기로 되돌아오는 RF 전력이다.")
    neighbour = Passage(id="facility-29", title="전력 종류", text="Forward power와 Reflected power는 매칭 회로를 거친 발생기 RF 전력이다.")
    text = f"{source.text} [facility-29]"
    assert [(c.id, c.how) for c in find_citations(text, [source, neighbour])] == [("plasma-9", "overlap")]
    # a sentence that really draws on both keeps the written id
    both = "Forward power와 Reflected power는 발생기로 되돌아오는 RF 전력이다. [facility-29]"
    assert "facility-29" in extract_citations(both, [source, neighbour])
