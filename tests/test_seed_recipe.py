"""A CPU rehearsal of the seed recipe (Qwen/Qwen2.5-7B-Instruct) on a tiny Qwen2 model.

No GPU and no Hub here, so the model is a Qwen2ForCausalLM of ~150k parameters
with a byte-level BPE tokenizer that carries Qwen2.5's special tokens, its chat template
(ChatML: `<|im_start|>role\\n...<|im_end|>\\n`, a default system prompt) and its generation
config (sampling defaults, two EOS ids, repetition_penalty 1.05). What the real model adds
(7B weights, bf16, CUDA, its 151k vocabulary) is not rehearsed: `scripts/gpu_smoke.sh`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import aldlab.train.trainer as trainer_mod
from aldlab.cli import app

#: Qwen2.5-Instruct's chat template (tokenizer_config.json), tool branches included.
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

#: Qwen2.5's first special tokens, in its id order (151643, 151644, 151645).
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

SEED_FLAGS = ["--num_epochs", "1", "--batch_size", "2", "--learning_rate", "2e-4", "--save_inference_only"]


def build_tiny_qwen_dir(path: Path, vocab_size: int = 2000) -> Path:
    """A random Qwen2ForCausalLM with a Qwen2.5-style tokenizer, chat template and generation config.

    The BPE is trained on Korean chat rows, so Korean text splits into realistic pieces.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from aldlab.prompts import SYSTEM_PROMPT
    from aldlab.train.tiny import write_chat_jsonl

    # The tokenizer learns from text this test owns (the rows `write_chat_jsonl` writes): the tiny
    # model's greedy answers (asserted below) depend on its vocabulary, which must not shift each
    # time someone edits or grows the shipped KB.
    rows = write_chat_jsonl(path.parent / "tokenizer-corpus.jsonl", 200, seed=7, mix=True)
    corpus = [SYSTEM_PROMPT] + [m["content"] for line in rows.read_text(encoding="utf-8").splitlines()
                                for m in json.loads(line)["messages"]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # Qwen2.5-Instruct: EOS is <|im_end|>, padding is <|endoftext|>, no BOS token.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=QWEN25_CHAT_TEMPLATE)
    end_of_text, im_end = (tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>"))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=end_of_text, eos_token_id=im_end, tie_word_embeddings=False)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    GenerationConfig(bos_token_id=end_of_text, pad_token_id=end_of_text, eos_token_id=[im_end, end_of_text],
                     do_sample=True, temperature=0.7, top_p=0.8, top_k=20,
                     repetition_penalty=1.05).save_pretrained(str(path))
    return path


def teach_to_answer_and_stop(model_dir: Path, rows: Path, steps: int = 30) -> None:
    """Full fine-tune of the random model on a few chats, so it ends answers with <|im_end|>.

    Qwen2.5-Instruct already stops there; a random model would answer until max_new_tokens
    whatever the stop ids, and the test could not tell a working stop from a broken one.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from aldlab.llm.model import load_tokenizer
    from aldlab.train.data import collate, tokenize_file

    tokenizer = load_tokenizer(str(model_dir))
    batch = collate(tokenize_file(rows, tokenizer), tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    torch.manual_seed(0)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(model_dir), safe_serialization=True)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aldlab.train.tiny import write_chat_jsonl

    root = tmp_path_factory.mktemp("qwen")
    model_dir = build_tiny_qwen_dir(root / "model")
    teach_to_answer_and_stop(model_dir, write_chat_jsonl(root / "instruct.jsonl", 4, seed=0))
    return model_dir


def write_five_passage_rows(path: Path, n: int) -> Path:
    """RAG rows the way `aldlab data build` writes them at top_k 5, from the KB's longest documents."""
    from aldlab.kb.io import load_kb
    from aldlab.prompts import build_messages
    from aldlab.settings import shipped_kb_dir

    docs = sorted(load_kb(shipped_kb_dir()).documents, key=lambda d: -len(d.text))
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            passages = docs[i : i + 5]
            answer = f"{passages[0].text[:120]} [{passages[0].id}]"
            row = {"id": f"r{i}", "style": "rag", "kind": "kb",
                   "messages": build_messages(f"{passages[0].title}은(는) 무엇인가요?", passages, answer=answer)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.mark.parametrize("preset", ["gpu-qwen7b", "gpu-qwen7b-qlora", None])
def test_five_passage_rows_fit_the_gpu_presets_and_the_seed_flags(qwen_dir: Path, tmp_path: Path,
                                                                  preset: str | None) -> None:
    """A fixed max_seq_len 1024 stopped the preset (and the seed's flags) before training.

    RAG rows carry up to 5 passages: 817 tokens median, 1050 max with Gemma's tokenizer,
    and other tokenizers split Korean finer. `max_seq_len: auto` sizes the limit from the data.
    """
    from aldlab.config import resolve_config
    from aldlab.llm.model import load_tokenizer
    from aldlab.train.config import TrainConfig
    from aldlab.train.data import load_train_and_eval, tokenize_file

    data = write_five_passage_rows(tmp_path / "train.jsonl", 20)
    tokenizer = load_tokenizer(str(qwen_dir))
    longest = max(len(e.input_ids) for e in tokenize_file(data, tokenizer))
    assert longest > 1024  # the condition the presets used to stop on
    config = resolve_config(TrainConfig, "train", preset=preset, overrides={"train_file": str(data)})
    _, _, stats, _, seq_len = load_train_and_eval(config, tokenizer, data, None)
    assert stats.too_long == 0 and stats.kept == 20 and seq_len >= longest


def _question(rows: Path) -> list[dict[str, str]]:
    """The first row's chat without its answer."""
    from aldlab.train.data import read_conversations

    return read_conversations(rows)[0].messages[:-1]


def _logits(model: Any, input_ids: list[int]) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids])).logits


def _ids(value: int | list[int]) -> list[int]:
    return value if isinstance(value, list) else [value]


RECIPES = {
    # finetune_llama.py's flags, spelled as the seed guide spells them: 12 rows / batch 2 = 6 steps.
    "seed-flags": (SEED_FLAGS, 6),
    # The preset as shipped (3 epochs, batch 4, r16, lr 2e-4, max_seq_len auto), cut to 3 steps.
    "gpu-qwen7b": (["--preset", "gpu-qwen7b", "--max_steps", "3"], 3),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_trains_reloads_merges_and_answers(qwen_dir: Path, tmp_path: Path, monkeypatch, recipe: str) -> None:
    """Train through the CLI; the saved adapter, and the merged export, are the trained model."""
    import torch

    from aldlab.llm.chat_template import render_prompt_ids
    from aldlab.llm.hf_generate import HFGenerator
    from aldlab.train.tiny import write_chat_jsonl

    flags, steps = RECIPES[recipe]
    train_file = write_chat_jsonl(tmp_path / "train.jsonl", 12, seed=0, mix=True)
    eval_file = write_chat_jsonl(tmp_path / "eval.jsonl", 4, seed=1, mix=True)
    adapter = tmp_path / "adapter"
    runs: list[Any] = []
    finish = trainer_mod._finish
    monkeypatch.setattr(trainer_mod, "_finish", lambda run, state: (runs.append(run), finish(run, state))[1])
    result = CliRunner().invoke(app, [
        "train", "--model_name", str(qwen_dir), "--train_file", str(train_file), "--eval_file", str(eval_file),
        "--output_dir", str(adapter), *flags,
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads((adapter / "training_meta.json").read_text(encoding="utf-8"))
    assert meta["final"]["steps"] == steps
    adapter_config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["base_model_name_or_path"] == str(qwen_dir)
    assert (adapter_config["r"], adapter_config["lora_alpha"], adapter_config["lora_dropout"]) == (16, 32, 0.1)
    assert sorted(adapter_config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]

    tokenizer = runs[0].tokenizer
    question = _question(train_file)
    prompt = render_prompt_ids(tokenizer, question)
    assert tokenizer.decode(prompt).endswith("<|im_end|>\n<|im_start|>assistant\n")
    trained = _logits(runs[0].peft_model.eval(), prompt)
    generator = HFGenerator(str(qwen_dir), {"ft": str(adapter)}).load()
    with generator._use("ft") as reloaded:
        torch.testing.assert_close(_logits(reloaded, prompt), trained)
    with generator._use(None) as base:
        assert not torch.allclose(_logits(base, prompt), trained, atol=1e-6)  # the adapter does something

    # The generation check at the end of training answered as the served adapter does, and stopped.
    from aldlab.train.data import read_conversations

    check = meta["generation_check"]
    assert (check["questions"], check["stopped"]) == (3, 3)
    rows = {row.line: row.messages for row in read_conversations(eval_file)}
    for a in check["answers"]:
        served = generator.generate(rows[a["line"]][:-1], max_new_tokens=a["max_new_tokens"], adapter="ft")
        assert a["answer"] == served and a["answer"]

    merged_dir = tmp_path / "merged"
    result = CliRunner().invoke(app, ["export", str(adapter), "--merge", "-o", str(merged_dir)])
    assert result.exit_code == 0, result.output
    merged = HFGenerator(str(merged_dir)).load()
    torch.testing.assert_close(_logits(merged._model, prompt), trained, atol=1e-4, rtol=1e-4)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert merged._end_of_turn()[0] == im_end
    # Both of Qwen2.5's EOS ids survive the merge (only <|im_end|> was kept before).
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert _ids(json.loads((merged_dir / "generation_config.json").read_text())["eos_token_id"]) == [im_end, end_of_text]

    # Greedy, although Qwen's generation_config.json says do_sample with temperature 0.7.
    answer = merged.generate_ids(question, max_new_tokens=40)
    assert answer == generator.generate_ids(question, max_new_tokens=40, adapter="ft")
    assert 0 < len(answer) < 40  # stopped at <|im_end|>, well before the token limit
    assert merged.generate(question, max_new_tokens=40).endswith("다.")  # a sentence, as the rows end


def test_a_models_own_repetition_penalty_does_not_reach_the_prompt(qwen_dir: Path, tmp_path: Path) -> None:
    """Qwen2.5's generation_config.json sets repetition_penalty 1.05, which transformers applied
    over the whole prompt: a RAG answer was pushed away from the passages it should quote.

    The model here carries an exaggerated penalty so one short answer shows it; greedy decoding
    must equal a plain argmax loop over the model's logits.
    """
    import shutil

    from transformers import GenerationConfig

    from aldlab.llm.chat_template import render_prompt_ids
    from aldlab.llm.hf_generate import HFGenerator
    from aldlab.train.tiny import write_chat_jsonl

    model_dir = Path(shutil.copytree(qwen_dir, tmp_path / "model"))
    config = GenerationConfig.from_pretrained(str(model_dir))
    config.repetition_penalty = 50.0
    config.save_pretrained(str(model_dir))
    generator = HFGenerator(str(model_dir)).load()
    question = _question(write_chat_jsonl(tmp_path / "rows.jsonl", 4, seed=0))
    ids, expected = render_prompt_ids(generator.tokenizer, question), []
    while len(expected) < 20:
        token = int(_logits(generator._model, ids)[0, -1].argmax())
        if token in generator._end_of_turn():
            break
        expected.append(token)
        ids.append(token)
    assert generator.generate_ids(question, max_new_tokens=20) == expected
