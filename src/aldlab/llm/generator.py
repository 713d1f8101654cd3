"""The one generator interface, its decoding settings and the one factory.

Every engine answers chat messages through `Generator`: `HFGenerator` (llm.hf_generate, a
local transformers model with switchable LoRA adapters), `LlamaCppGenerator`
(llm.llamacpp, GGUF on the CPU) and `OpenAIGenerator` (llm.openai_client, any
OpenAI-compatible server). `make_generator` picks one from plain values, so this layer
needs no stage's config; `rag.build.generator_from_config` turns a `RagConfig` into them.
"""

from __future__ import annotations

from collections.abc import Generator as PieceGenerator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

#: The model name that means "no adapter": the bare base model.
BASE = "base"

#: Why a reply ended, in OpenAI's words: "stop" = the model ended its turn (end-of-turn
#: token, or a server said so), "length" = it was cut at `max_new_tokens` (or the context).
StopReason = Literal["stop", "length"]

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    """One generated reply and why it ended (an OpenAI client's `finish_reason`)."""

    text: str
    stop_reason: StopReason = "stop"


class Generator(Protocol):
    """Turns chat messages into text. `adapter=None` means the base model.

    `stream` is a Python generator whose *return value* is the stop reason: code that only
    iterates the pieces (bench, tests) is unchanged, and `TrackedStream` reads the reason.
    """

    def generate(self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None) -> str: ...

    def reply(self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None) -> Reply:
        """`generate`'s text and whether it ended by itself or was cut at `max_new_tokens`."""
        ...

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> PieceGenerator[str, None, StopReason]: ...

    def models(self) -> list[str]:
        """Names accepted as `adapter` (plus 'base')."""
        ...


class TrackedStream(Generic[T]):
    """Iterates a stream and keeps its return value, the stop reason, in `stop_reason`.

    A `for` loop drops a generator's return value; `yield from` inside `__iter__` keeps it.
    A plain iterator (a test stand-in) returns None, read as "stop": it was not cut.
    """

    def __init__(self, stream: Iterable[T]) -> None:
        self._stream = stream
        self.stop_reason: StopReason = "stop"

    def __iter__(self) -> Iterator[T]:
        returned = yield from self._stream
        self.stop_reason = "length" if returned == "length" else "stop"


@dataclass(frozen=True)
class Decoding:
    """How a generator picks tokens; the defaults decode greedily with no anti-loop rule."""

    #: 0 means greedy decoding (deterministic answers, as in eval).
    temperature: float = 0.0
    #: Penalty on tokens the answer already produced (1.0 = off); local transformers only.
    repetition_penalty: float = 1.0
    #: Forbid repeating an n-gram of this many answer tokens (0 = off); local transformers only.
    no_repeat_ngram_size: int = 0


def make_generator(
    decoding: Decoding,
    model_name: str | None = None,
    adapters: dict[str, str] | None = None,
    llm_url: str | None = None,
    llm_model: str | None = None,
    api_key: str | None = None,
    engine: str = "auto",
) -> Generator:
    """The one resolver from "which model, engine and server" to a generator.

    A server URL wins (its model is `llm_model`, or the first it lists); otherwise `engine`
    ('auto' | 'transformers' | 'llama.cpp', see `llamacpp.resolve_engine`) picks the local
    engine. The anti-loop settings apply to the transformers engine only; a server uses its
    own defaults.
    """
    if llm_url:
        from aldlab.llm.openai_client import OpenAIGenerator

        return OpenAIGenerator(llm_url, llm_model, api_key, temperature=decoding.temperature)
    from aldlab.llm import hf_generate, llamacpp

    if llamacpp.resolve_engine(engine, model_name) == llamacpp.ENGINE:
        return llamacpp.LlamaCppGenerator(model_name, adapters, temperature=decoding.temperature)
    return hf_generate.HFGenerator(
        model_name,
        adapters,
        temperature=decoding.temperature,
        repetition_penalty=decoding.repetition_penalty,
        no_repeat_ngram_size=decoding.no_repeat_ngram_size,
    )
