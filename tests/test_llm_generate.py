"""HFGenerator (tiny random Gemma-3 + LoRA adapters), OpenAIGenerator (mock transport) and the factory."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.llm.hf_generate import HFGenerator, answer_logits_processors, banned_next_tokens
from aldlab.llm.openai_client import OpenAIGenerator

MESSAGES = [{"role": "system", "content": "시스템"}, {"role": "user", "content": "ALD란?"}]
#: Prompts of clearly different lengths, so the batch really needs left padding.
BATCH = [
    MESSAGES,
    [{"role": "system", "content": "시스템"}, {"role": "user", "content": "퍼지 시간이 부족하면 CVD 성분이 생겨 균일도가 나빠지나요? 왜 그런가요?"}],
    [{"role": "user", "content": "TMA"}],
    [{"role": "system", "content": "긴 시스템 프롬프트 " * 6}, {"role": "user", "content": "ALD 윈도우는?"}],
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aldlab.llm.tiny import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero B matrices, so it really changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    out = tmp_path_factory.mktemp("adapter") / "ft"
    peft_model.save_pretrained(str(out))
    return out


def test_base_and_adapter_share_one_base_model(tiny_model_dir: Path, adapter_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir), {"ft": str(adapter_dir)})
    assert gen.models() == ["base", "ft"]
    base_1 = gen.generate(MESSAGES, max_new_tokens=8)
    tuned = gen.generate(MESSAGES, max_new_tokens=8, adapter="ft")
    base_2 = gen.generate(MESSAGES, max_new_tokens=8, adapter="base")
    assert base_1 == base_2  # greedy: deterministic, and the adapter is really switched off
    assert tuned != base_1  # the adapter changes the output
    model = gen._model
    gen.generate(MESSAGES, max_new_tokens=2, adapter="ft")
    assert gen._model is model  # no reload between requests


def test_stream_concatenates_to_generate(tiny_model_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir))
    pieces = list(gen.stream(MESSAGES, max_new_tokens=6))
    assert "".join(pieces).strip() == gen.generate(MESSAGES, max_new_tokens=6)


def test_stop_reason_says_whether_the_reply_was_cut(tiny_model_dir: Path) -> None:
    """"length" when max_new_tokens cut the reply, "stop" when the model ended its turn,
    from `reply` and from the stream's return value alike (issue 22: finish_reason)."""
    from aldlab.llm.generator import TrackedStream

    gen = HFGenerator(str(tiny_model_dir))
    cut = gen.reply(MESSAGES, max_new_tokens=3)
    assert cut.stop_reason == "length" and cut.text == gen.generate(MESSAGES, max_new_tokens=3)
    streamed = TrackedStream(gen.stream(MESSAGES, max_new_tokens=3))
    assert "".join(streamed).strip() == cut.text and streamed.stop_reason == "length"
    # The random model never writes <end_of_turn>: make the token it writes second the
    # end-of-turn id, so greedy decoding really stops there, before the budget.
    first_two = gen.generate_ids(MESSAGES, max_new_tokens=2)
    assert len(first_two) == 2
    gen._stop_ids = [first_two[1]]
    ended = gen.reply(MESSAGES, max_new_tokens=8)
    assert ended.stop_reason == "stop" and ended.text == gen._decode(first_two[: first_two.index(first_two[1])])
    streamed = TrackedStream(gen.stream(MESSAGES, max_new_tokens=8))
    # The streamer shows this stand-in stop token (a real <end_of_turn> is special and hidden).
    assert "".join(streamed).startswith(ended.text) and streamed.stop_reason == "stop"
    assert gen.reply(MESSAGES, max_new_tokens=1).stop_reason == "length"  # cut before the stop token


def test_tracked_stream_reads_a_plain_iterator_as_stop() -> None:
    from aldlab.llm.generator import TrackedStream

    def cut():  # noqa: ANN202
        yield "a"
        return "length"

    tracked = TrackedStream(cut())
    assert list(tracked) == ["a"] and tracked.stop_reason == "length"
    plain = TrackedStream(iter(["a", "b"]))  # a stand-in that returns nothing was not cut
    assert list(plain) == ["a", "b"] and plain.stop_reason == "stop"


def test_generation_is_serialised_across_threads(tiny_model_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir)).load()
    expected = gen.generate(MESSAGES, max_new_tokens=5)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(gen.generate(MESSAGES, max_new_tokens=5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


@pytest.mark.parametrize("adapter", [None, "ft"])
def test_batched_generation_equals_one_by_one_token_for_token(tiny_model_dir: Path, adapter_dir: Path, adapter: str | None) -> None:
    gen = HFGenerator(str(tiny_model_dir), {"ft": str(adapter_dir)})
    alone = [gen.generate_ids(m, max_new_tokens=12, adapter=adapter) for m in BATCH]
    batched = gen.generate_batch_ids(BATCH, max_new_tokens=12, adapter=adapter)
    lengths = {len(gen._inputs(m)["input_ids"][0]) for m in BATCH}
    assert len(lengths) == len(BATCH)  # the batch was padded
    assert batched == alone
    assert all(len(row) == 12 for row in alone)  # random model: no early stop, every step compared
    assert gen.generate_batch(BATCH, max_new_tokens=12, adapter=adapter) == [
        gen.generate(m, max_new_tokens=12, adapter=adapter) for m in BATCH
    ]
    assert gen.generate_batch([], max_new_tokens=4) == []


def test_batched_rows_stop_at_their_own_end_of_turn(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a token the first row emits early the end-of-turn token: that row ends there,
    the others run on, and every row still equals its one-by-one output."""
    import aldlab.llm.hf_generate as generate_module

    gen = HFGenerator(str(tiny_model_dir))
    free = [gen.generate_ids(m, max_new_tokens=10) for m in BATCH]
    stop = free[0][2]
    monkeypatch.setattr(generate_module, "_end_of_turn_ids", lambda tokenizer: [stop])
    gen = HFGenerator(str(tiny_model_dir))  # stop ids are looked up once per generator
    alone = [gen.generate_ids(m, max_new_tokens=10) for m in BATCH]
    assert alone[0] == free[0][: free[0].index(stop)]  # row 0 really stopped early
    assert any(len(row) == 10 for row in alone)  # and some row did not
    assert gen.generate_batch_ids(BATCH, max_new_tokens=10) == alone


def test_banned_next_tokens_completes_only_seen_ngrams() -> None:
    assert banned_next_tokens([1, 2, 3, 1, 2], 3) == {3}
    assert banned_next_tokens([1, 2, 3, 1, 2], 2) == {3}
    assert banned_next_tokens([1, 2, 1], 2) == {2}
    assert banned_next_tokens([1, 2, 3], 1) == {1, 2, 3}
    assert banned_next_tokens([1, 2], 3) == set()
    assert banned_next_tokens([1, 1, 1], 0) == set()


def test_anti_loop_processors_ignore_the_prompt() -> None:
    """The prompt (the RAG contexts) may be quoted: only the answer's own n-grams are banned."""
    import torch

    (no_repeat,) = answer_logits_processors(3, no_repeat_ngram_size=2)
    ids = torch.tensor([[5, 6, 7, 5, 6]])  # prompt 5 6 7, answer 5 6: "6 7" is only in the prompt
    scores = no_repeat(ids, torch.zeros(1, 10))
    assert torch.isfinite(scores).all()
    scores = no_repeat(torch.tensor([[5, 6, 7, 6, 8, 6]]), torch.zeros(1, 10))  # answer 6 8 6 -> 8 banned
    assert torch.isinf(scores[0, 8]) and torch.isfinite(scores[0, 7])
    (penalty,) = answer_logits_processors(3, repetition_penalty=2.0)
    scores = penalty(torch.tensor([[5, 6, 7, 6]]), torch.ones(1, 10))
    assert scores[0, 6] == 0.5 and scores[0, 5] == 1.0 and scores[0, 7] == 1.0
    assert answer_logits_processors(3) == []  # defaults: off, decoding unchanged


def test_anti_loop_settings_stop_repeats_in_batched_and_single_generation(tiny_model_dir: Path) -> None:
    plain = HFGenerator(str(tiny_model_dir))
    loops = plain.generate_ids(BATCH[2], max_new_tokens=24)
    bigrams = list(zip(loops, loops[1:]))
    assert len(set(bigrams)) < len(bigrams)  # the random model repeats itself without the setting
    gen = HFGenerator(str(tiny_model_dir), repetition_penalty=1.3, no_repeat_ngram_size=2)
    alone = [gen.generate_ids(m, max_new_tokens=24) for m in BATCH]
    assert gen.generate_batch_ids(BATCH, max_new_tokens=24) == alone
    for row in alone:
        pairs = list(zip(row, row[1:]))
        assert len(set(pairs)) == len(pairs)
    assert "".join(gen.stream(BATCH[2], max_new_tokens=24)).strip() == gen.generate(BATCH[2], max_new_tokens=24)


def test_generator_from_config_passes_the_decoding_settings(tiny_model_dir: Path) -> None:
    from aldlab.rag.build import generator_from_config
    from aldlab.rag.config import RagConfig

    gen = generator_from_config(RagConfig(repetition_penalty=1.2, no_repeat_ngram_size=4), str(tiny_model_dir))
    assert isinstance(gen, HFGenerator) and gen.repetition_penalty == 1.2 and gen.no_repeat_ngram_size == 4
    remote = generator_from_config(RagConfig(llm_model="m"), llm_url="http://127.0.0.1:9/v1")
    assert isinstance(remote, OpenAIGenerator) and remote.model == "m"
    with pytest.raises(UserError, match="no_repeat_ngram_size"):
        RagConfig(no_repeat_ngram_size=-1)
    with pytest.raises(UserError, match="repetition_penalty"):
        RagConfig(repetition_penalty=0.0)


def test_unknown_adapter_and_missing_dir_are_user_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir))
    with pytest.raises(UserError, match="ft"):
        gen.generate(MESSAGES, max_new_tokens=4, adapter="ft")
    with pytest.raises(UserError, match="nope"):
        HFGenerator(str(tiny_model_dir), {"ft": str(tmp_path / "nope")})


def _mock_server(calls: list[dict]):  # noqa: ANN202
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}, {"id": "ald-ft"}]})
        body = json.loads(request.content)
        calls.append(body)
        text = f"모델 {body['model']} 답변 [tiny-001]"
        finish = "length" if body["max_tokens"] < 5 else "stop"  # a server's own stop reason
        if not body["stream"]:
            return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": finish}]})
        chunks = [f"data: {json.dumps({'choices': [{'delta': {'content': text[i:i + 4]}}]})}\n\n" for i in range(0, len(text), 4)]
        last = {"choices": [{"delta": {}, "finish_reason": finish}]}
        usage = {"choices": [], "usage": {"completion_tokens": 3}}  # include_usage's chunk has no choice
        return httpx.Response(200, text="".join(chunks) + f"data: {json.dumps(last)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n")

    return httpx.MockTransport(handler)


def test_openai_generator_routes_adapters_as_model_names() -> None:
    calls: list[dict] = []
    gen = OpenAIGenerator("http://127.0.0.1:9/", transport=_mock_server(calls))
    assert gen.base_url == "http://127.0.0.1:9/v1"
    assert gen.models() == ["base", "Qwen/Qwen2.5-7B-Instruct", "ald-ft"]
    assert gen.generate(MESSAGES, max_new_tokens=7) == "모델 Qwen/Qwen2.5-7B-Instruct 답변 [tiny-001]"
    assert calls[-1]["max_tokens"] == 7 and calls[-1]["temperature"] == 0.0 and calls[-1]["messages"] == MESSAGES
    assert "".join(gen.stream(MESSAGES, max_new_tokens=7, adapter="ald-ft")) == "모델 ald-ft 답변 [tiny-001]"
    assert calls[-1]["model"] == "ald-ft" and calls[-1]["stream"] is True


def test_openai_generator_reports_the_servers_finish_reason() -> None:
    from aldlab.llm.generator import TrackedStream

    gen = OpenAIGenerator("http://127.0.0.1:9/", model="m", transport=_mock_server([]))
    assert gen.reply(MESSAGES, max_new_tokens=4).stop_reason == "length"
    assert gen.reply(MESSAGES, max_new_tokens=7).stop_reason == "stop"
    cut = TrackedStream(gen.stream(MESSAGES, max_new_tokens=4))
    assert "".join(cut) == "모델 m 답변 [tiny-001]" and cut.stop_reason == "length"
    ended = TrackedStream(gen.stream(MESSAGES, max_new_tokens=7))
    assert "".join(ended) and ended.stop_reason == "stop"


def test_openai_generator_unreachable_is_a_user_error() -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gen = OpenAIGenerator("http://127.0.0.1:9/v1", model="m", transport=httpx.MockTransport(refuse))
    with pytest.raises(UserError, match="llm-url"):
        gen.generate(MESSAGES, max_new_tokens=7)
