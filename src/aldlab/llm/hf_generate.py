"""`HFGenerator`: a local transformers causal LM with switchable LoRA adapters.

`HFGenerator` loads the base model once; every LoRA adapter is attached to that same base
through peft, and a request picks one (`adapter="ft"`) or none (`adapter=None`/"base",
run inside `disable_adapter()`), so base-vs-fine-tuned comparisons need no reload. The
prompt is `llm.chat_template.render_prompt_ids`, the tokenisation the trainer builds its
examples with. Greedy decoding by default (deterministic, as in eval), stopping at the chat
format's end-of-turn token. A lock serialises generation: the web server calls it from worker
threads and the adapter switch is model-global state.

`generate_batch` answers several prompts in one forward pass per step (left padding, so
every row's next token sits in the last column). On this CPU one-by-one decoding is
memory-bound: the 270M weights are read once per token whatever the batch size, so a
batch of 8 costs little more per step than one row (numbers: bench/eval_generate.py).

Anti-loop settings (`repetition_penalty`, `no_repeat_ngram_size`) look at the *answer's*
tokens only. transformers' built-in processors also count the prompt, and a RAG prompt
holds the contexts the answer is meant to quote: a no-repeat-3-gram over the prompt
forbids copying any three tokens of a passage.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Iterator
from typing import Any

from aldlab.errors import UserError
from aldlab.llm.adapters import check_adapter_dir
from aldlab.llm.chat_template import end_of_turn_token_ids, render_prompt_ids
from aldlab.llm.generator import BASE, Reply, StopReason


def banned_next_tokens(tokens: list[int], size: int) -> set[int]:
    """Tokens that would complete an n-gram (n=`size`) already present in `tokens`."""
    if size <= 0 or len(tokens) < size:
        return set()
    if size == 1:
        return set(tokens)
    prefix = tokens[len(tokens) - size + 1 :]
    return {
        tokens[j + size - 1]
        for j in range(len(tokens) - size + 1)
        if tokens[j : j + size - 1] == prefix
    }


def answer_logits_processors(
    prompt_length: int, *, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0
) -> list[Any]:
    """Logits processors that see only the tokens generated after `prompt_length`.

    With left padding every row's prompt ends at the same column, so one length serves a
    whole batch and a row decodes exactly as it would alone.
    """
    from transformers import LogitsProcessor, RepetitionPenaltyLogitsProcessor

    class NoRepeatNGramInAnswer(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for row, tokens in enumerate(input_ids[:, prompt_length:].tolist()):
                banned = banned_next_tokens(tokens, no_repeat_ngram_size)
                if banned:
                    scores[row, sorted(banned)] = -float("inf")
            return scores

    processors: list[Any] = []
    if repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(repetition_penalty), prompt_ignore_length=prompt_length))
    if no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramInAnswer())
    return processors


def _end_of_turn_ids(tokenizer: Any) -> list[int]:
    return list(end_of_turn_token_ids(tokenizer))


def merge_token_rows(model: Any, adapter: str) -> None:
    """Write `adapter`'s trained token rows (train.trainable_tokens) into the shared embedding.

    Unmerged, PEFT rebuilds the whole 262k x 640 embedding (and the tied LM head) with the
    adapter's rows on every forward: two 670 MB copies per generated token. Merged, the rows
    sit in the weight itself; switching to the base (`disable_adapter`) unmerges them again
    inside PEFT, so base answers stay the base model's.
    """
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    for module in model.modules():
        if not isinstance(module, TrainableTokensLayer) or adapter not in module.trainable_tokens_delta:
            continue
        if module.merged_adapters == [adapter]:
            continue
        if module.merged:
            module.unmerge()
        module.merge(adapter_names=[adapter])


class HFGenerator:
    """Local transformers model with optional LoRA adapters, loaded lazily on first use.

    `model`/`tokenizer` may be passed ready-made (tests use a tiny random model).
    """

    engine = "transformers"

    def __init__(
        self,
        model_name: str | None = None,
        adapters: dict[str, str] | None = None,
        *,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        self.model_name = model_name
        self.adapter_paths = {name: str(path) for name, path in (adapters or {}).items()}
        for name, path in self.adapter_paths.items():
            if name == BASE:
                raise UserError(
                    "어댑터 이름으로 'base'는 쓸 수 없습니다.", "'base' is reserved for the base model.",
                    hint="다른 이름을 쓰세요 / pick another adapter name",
                )
            check_adapter_dir(path)
        self.temperature = temperature
        self.repetition_penalty = float(repetition_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        self._model = model
        self._tokenizer = tokenizer
        self._adapters_loaded = False
        self._stop_ids: list[int] | None = None
        self._load_lock = threading.RLock()
        # A plain Lock (not RLock) for generation: a streaming response may be consumed
        # by different server threads, and only a Lock may be released by another thread.
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- loading
    def load(self) -> HFGenerator:
        """Load the base model, tokenizer and adapters now (otherwise on first request)."""
        with self._load_lock:
            if self._tokenizer is None:
                from aldlab.llm.model import load_tokenizer

                self._tokenizer = load_tokenizer(self.model_name)
            if self._model is None:
                from aldlab.llm.model import load_model

                self._model = load_model(self.model_name)
            if not self._adapters_loaded:
                self._attach_adapters()
                self._model.eval()
                self._adapters_loaded = True
        return self

    def _attach_adapters(self) -> None:
        if not self.adapter_paths:
            return
        from peft import PeftModel

        for name, path in self.adapter_paths.items():
            try:
                if isinstance(self._model, PeftModel):
                    self._model.load_adapter(path, adapter_name=name)
                else:
                    self._model = PeftModel.from_pretrained(self._model, path, adapter_name=name)
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"어댑터를 불러올 수 없습니다: {path}",
                    f"Cannot load adapter {path!r}: {str(exc).splitlines()[0] if str(exc) else exc}",
                    path=path,
                    hint="어댑터가 이 베이스 모델로 학습되었는지 확인하세요 / check it was trained on this base",
                ) from exc

    def add_adapter(self, name: str, path: str) -> None:
        """Attach one more adapter to the loaded base (e.g. a freshly trained one)."""
        with self._load_lock, self._lock:
            self.adapter_paths[name] = str(path)
            if self._adapters_loaded:
                from peft import PeftModel

                if isinstance(self._model, PeftModel):
                    self._model.load_adapter(str(path), adapter_name=name)
                else:
                    self._model = PeftModel.from_pretrained(self._model, str(path), adapter_name=name)
                self._model.eval()

    def models(self) -> list[str]:
        """'base' plus every adapter name."""
        return [BASE, *self.adapter_paths]

    @property
    def tokenizer(self) -> Any:
        return self.load()._tokenizer

    def _end_of_turn(self) -> list[int]:
        """Stop ids, looked up once: the lookup builds the 262k-entry vocab dict (~1 s here)."""
        if self._stop_ids is None:
            self._stop_ids = _end_of_turn_ids(self._tokenizer)
        return self._stop_ids

    # ---------------------------------------------------------------- generation
    @contextlib.contextmanager
    def _use(self, adapter: str | None) -> Iterator[Any]:
        """Select an adapter (or the bare base) for the duration of one request."""
        self.load()
        name = None if adapter in (None, "", BASE) else adapter
        if name is not None and name not in self.adapter_paths:
            raise UserError(
                f"알 수 없는 모델/어댑터: {adapter}",
                f"Unknown model/adapter: {adapter}",
                hint=f"사용 가능 / available: {', '.join(self.models())}",
            )
        if not self.adapter_paths:
            yield self._model
        elif name is None:
            with self._model.disable_adapter():
                yield self._model
        else:
            self._model.set_adapter(name)
            merge_token_rows(self._model, name)
            yield self._model

    def _inputs(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """One prompt's tensors; its ids are `render_prompt_ids`, the tokenisation training uses."""
        return self._batch_inputs([messages])

    def _batch_inputs(self, batch: list[list[dict[str, str]]]) -> dict[str, Any]:
        """Left-padded inputs: every row's last prompt token is in the last column.

        generate() derives position ids from the attention mask (cumsum - 1), so a padded
        row sees the same positions as it would alone.
        """
        rows = [{"input_ids": render_prompt_ids(self._tokenizer, messages)} for messages in batch]
        return dict(self._tokenizer.pad(rows, padding=True, padding_side="left", return_tensors="pt"))

    def _pad_id(self) -> int:
        tokenizer = self._tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _generate_kwargs(self, inputs: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": int(max_new_tokens),
            "eos_token_id": self._end_of_turn(),
            "pad_token_id": self._pad_id(),
            # A model's generation_config.json may set its own penalties (Qwen2.5-Instruct:
            # repetition_penalty 1.05); transformers would apply them over the prompt too.
            # Switched off here: the answer-only ones below are the settings that apply.
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
            "logits_processor": answer_logits_processors(
                int(inputs["input_ids"].shape[1]),
                repetition_penalty=self.repetition_penalty,
                no_repeat_ngram_size=self.no_repeat_ngram_size,
            ),
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _answer_ids(self, row: Any) -> list[int]:
        """Generated ids of one row up to (not including) its first end-of-turn token."""
        return self._answer_ids_and_stop(row)[0]

    def _answer_ids_and_stop(self, row: Any) -> tuple[list[int], StopReason]:
        """`_answer_ids` and why the row ended: generate() stops only at an end-of-turn
        token or at max_new_tokens, so a row without one was cut ("length")."""
        stops = set(self._end_of_turn())
        out: list[int] = []
        for token in row.tolist():
            if token in stops:
                return out, "stop"
            out.append(int(token))
        return out, "length"

    def _reply_ids(
        self, messages: list[dict[str, str]], max_new_tokens: int, adapter: str | None
    ) -> tuple[list[int], StopReason]:
        import torch

        self.load()
        with self._lock, self._use(adapter) as model, torch.inference_mode():
            inputs = self._inputs(messages)
            output = model.generate(**self._generate_kwargs(inputs, max_new_tokens))
            return self._answer_ids_and_stop(output[0, inputs["input_ids"].shape[1] :])

    def generate_ids(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> list[int]:
        """Token ids of the reply to `messages`, one prompt alone (no padding)."""
        return self._reply_ids(messages, max_new_tokens, adapter)[0]

    def generate_batch_ids(
        self, batch: list[list[dict[str, str]]], *, max_new_tokens: int, adapter: str | None = None
    ) -> list[list[int]]:
        """Token ids of the replies to several prompts decoded together (left padding).

        Each row stops at its own end-of-turn token (generate() pads finished rows until
        the last one ends); rows are cut at that token here.
        """
        import torch

        if not batch:
            return []
        self.load()
        with self._lock, self._use(adapter) as model, torch.inference_mode():
            inputs = self._batch_inputs(batch)
            output = model.generate(**self._generate_kwargs(inputs, max_new_tokens))
            prompt_length = inputs["input_ids"].shape[1]
            return [self._answer_ids(row[prompt_length:]) for row in output]

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> str:
        """The assistant's reply to `messages` (special tokens stripped)."""
        return self._decode(self.generate_ids(messages, max_new_tokens=max_new_tokens, adapter=adapter))

    def reply(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Reply:
        """The reply and whether it ended at its end-of-turn token or at max_new_tokens."""
        ids, stop_reason = self._reply_ids(messages, max_new_tokens, adapter)
        return Reply(self._decode(ids), stop_reason)

    def generate_batch(
        self, batch: list[list[dict[str, str]]], *, max_new_tokens: int, adapter: str | None = None
    ) -> list[str]:
        """Replies to several prompts, in order; greedy output equals `generate` row by row."""
        ids = self.generate_batch_ids(batch, max_new_tokens=max_new_tokens, adapter=adapter)
        return [self._decode(row) for row in ids]

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Generator[str, None, StopReason]:
        """Yield text pieces as they are generated (for SSE); return why generation ended."""
        import torch
        from transformers import TextIteratorStreamer

        self.load()
        with self._lock, self._use(adapter) as model:
            inputs = self._inputs(messages)
            streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
            kwargs = self._generate_kwargs(inputs, max_new_tokens)
            errors: list[BaseException] = []
            outputs: list[Any] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        outputs.append(model.generate(**kwargs, streamer=streamer))
                except BaseException as exc:  # surfaced in the consumer thread below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                worker.join()
            if errors:
                raise errors[0]
            # The streamer gives text only; the ids generate() returned say how it ended.
            return self._answer_ids_and_stop(outputs[0][0, inputs["input_ids"].shape[1] :])[1]
