"""The assistant: one answer pipeline in two halves, for ask, chat, serve and eval.

`plan` makes a question ready: follow-up rewrite, retrieval (once), the refusal gate
before the LLM (`aldlab.rag.refusal`), and the prompt (`aldlab.prompts`). `settle` turns
generated text into an `Answer`: the model's own refusals, echoes, citations. `run`
generates between the two, streaming or not. The server plans first (it shows the plan's
passages while the question waits), batched eval plans every question and generates the
prompts together; both settle with the same method, so nothing mirrors anything.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aldlab import prompts
from aldlab.errors import UserError
from aldlab.kb.io import KbWatcher, load_kb
from aldlab.kb.schema import KnowledgeBase
from aldlab.llm.generator import Generator, StopReason, TrackedStream
from aldlab.rag.build import build_retriever
from aldlab.rag.citations import align_written_citations, close_cut_citation, find_citations, quotes_part_of
from aldlab.rag.config import RagConfig
from aldlab.rag.parts import POOL as LATER_PART_POOL
from aldlab.rag.parts import later_part
from aldlab.rag.refusal import refusal_reason, settle_generated
from aldlab.rag.retriever import HybridRetriever, Retrieval
from aldlab.rag.types import Answer, AskOptions, Citation, Passage, Plan

#: Pronouns and deictic phrases that make a question depend on the previous turn.
ANAPHORA = re.compile(
    r"(그거|그것|그게|그건|그걸|그거를|이거|이것|이게|이건|저거|저것|거기|위의?\s?내용|"
    r"그\s?(?:장비|부분|값|방법|원인|현상|문제|단계|공정|부품|설정))"
)


class Assistant:
    """Question answering over one KB with one generator (HF local or OpenAI-compatible)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        retriever: HybridRetriever,
        generator: Generator | None,
        config: RagConfig,
        *,
        kb_path: str | Path | None = None,
        generator_factory: Callable[[], Generator] | None = None,
    ) -> None:
        self.kb = kb
        self.retriever = retriever
        self.config = config
        self.kb_path = Path(kb_path) if kb_path else None
        self._generator = generator
        self._generator_factory = generator_factory
        self._kb_watcher = KbWatcher(self.kb_path) if self.kb_path else None
        self._reload_lock = threading.Lock()
        self._terms = sorted(kb.domain_terms(), key=len, reverse=True)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        kb_path: str | Path,
        config: RagConfig | None = None,
        model_name: str | None = None,
        adapters: dict[str, str] | None = None,
        llm_url: str | None = None,
        *,
        show_progress: bool = True,
    ) -> Assistant:
        """KB + cached index + calibrated refusal + a generator that loads on first use."""
        config = config or RagConfig()
        kb = load_kb(kb_path)
        retriever = build_retriever(kb, config, kb_source=kb_path, show_progress=show_progress)
        url = llm_url or config.llm_url

        def factory() -> Generator:
            from aldlab.rag.build import generator_from_config

            # The one resolver: ask, chat, serve and eval decode with the same settings and engine.
            return generator_from_config(config, model_name, adapters, url)

        return cls(kb, retriever, None, config, kb_path=kb_path, generator_factory=factory)

    @property
    def generator(self) -> Generator:
        """The generator, created on first use (context-only answers never need it)."""
        if self._generator is None:
            if self._generator_factory is None:
                raise UserError("생성 모델이 설정되지 않았습니다.", "No generator configured.")
            self._generator = self._generator_factory()
        return self._generator

    def models(self) -> list[str]:
        """Names accepted as `model=` ('base' plus adapter names)."""
        return self.generator.models()

    def add_adapter(self, name: str, path: str) -> None:
        """Attach adapter `path` as model `name` to the loaded base (the server's hot swap).

        Only the local transformers engine can: llama.cpp bakes adapters in at load, and a
        remote server (--llm-url) serves the models it was started with.
        """
        from aldlab.llm.hf_generate import HFGenerator

        generator = self.generator
        if not isinstance(generator, HFGenerator):
            raise UserError(
                "이 엔진은 실행 중에 어댑터를 추가할 수 없습니다.",
                f"The {getattr(generator, 'engine', '?')} engine cannot attach adapters while running.",
                hint="서버를 다시 시작하세요 / restart the server",
            )
        generator.add_adapter(name, path)

    # ------------------------------------------------------------------ KB changes
    def reload_if_changed(self) -> bool:
        """Reload the KB and its index when the files on disk changed (True if reloaded)."""
        if self._kb_watcher is None:
            return False
        with self._reload_lock:
            kb = self._kb_watcher.read_if_changed()
            if kb is None or kb.content_hash() == self.kb.content_hash():
                return False
            retriever = build_retriever(kb, self.config, kb_source=self.kb_path, show_progress=False)
            self.kb, self.retriever = kb, retriever
            self._terms = sorted(kb.domain_terms(), key=len, reverse=True)
            return True

    # ------------------------------------------------------------------ follow-ups
    def _mentioned_terms(self, text: str) -> list[str]:
        """Domain terms in `text`, longest first, without terms inside longer ones."""
        folded = text.casefold()
        found: list[str] = []
        for term in self._terms:
            t = term.casefold()
            if t and t in folded and not any(t in f.casefold() for f in found):
                found.append(term)
        return found

    def rewrite_followup(self, question: str, history: Sequence[dict[str, str]] = ()) -> str:
        """Make a follow-up self-contained using the previous questions' topic.

        "그거 뭐야?" after "로드락 벤트 절차 알려줘" becomes "로드락 벤트 뭐야?"-like: the
        pronoun is replaced by the domain terms of the last user turn that had any; a short
        question with no domain term of its own gets them prepended.
        """
        previous = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
        if not previous:
            return question
        topic = ""
        for text in reversed(previous):
            terms = self._mentioned_terms(text)
            if terms:
                topic = " ".join(terms[:3])
                break
        topic = topic or previous[-1].strip()
        if ANAPHORA.search(question):
            return ANAPHORA.sub(topic, question, count=1)
        if not self._mentioned_terms(question) and len(question.strip()) <= 30:
            return f"{topic} {question.strip()}"
        return question

    # ------------------------------------------------------------------ the pipeline
    def plan(self, question: str, options: AskOptions = AskOptions()) -> Plan:
        """The first half: everything before generation, retrieval done once.

        A refusal before the LLM and a contexts-only request come back settled (`final`);
        otherwise the plan carries the prompt for `run` or a batch generator.
        """
        started = time.perf_counter()
        question = (question or "").strip()
        if not question:
            raise UserError("질문이 비어 있습니다.", "The question is empty.", hint='예 / e.g.: aldlab ask "ALD란?"')
        max_new_tokens = options.max_new_tokens or self.config.max_new_tokens
        turns = list(options.history)[-2 * self.config.history_turns :] if self.config.history_turns > 0 else []
        resolved = self.rewrite_followup(question, options.history)
        plan = Plan(question=question, options=options, max_new_tokens=max_new_tokens)
        if not options.use_retrieval:
            plan.messages = prompts.build_messages(resolved, None, history=turns)
            return self._planned(plan, started)
        retrieval = self.retriever.search(resolved, top_k=options.top_k, filter_keyword=options.filter_keyword)
        plan.passages, plan.confidence = retrieval.passages, round(retrieval.confidence, 4)
        reason = self.refusal_reason(retrieval)
        if reason:
            plan.final = self._answer(plan, prompts.refusal_answer(reason), refused=True)
        elif options.context_only:
            # For reading: best first. Contexts shown as contexts answer nothing, so nothing is cited.
            text = prompts.format_context(plan.passages, most_relevant_last=False)
            plan.final = self._answer(plan, text, model="")
        else:
            plan.messages = prompts.build_messages(resolved, plan.passages, history=turns)
            plan.later_part = self._later_part_passage(resolved, plan.passages)
        return self._planned(plan, started)

    def _later_part_passage(self, question: str, passages: Sequence[Passage]) -> Passage | None:
        """The best passage for the later part of a two-part question, when it is another
        document than the best one and retrieval would not refuse it (`rag.parts`)."""
        if not self.config.answer_parts or not passages:
            return None
        query = later_part(question, self._mentioned_terms)
        if query is None:
            return None
        found = self.retriever.search(query, top_k=1)
        if not found.passages or self.refusal_reason(found):
            return None
        best = found.passages[0]
        if best.id == passages[0].id:
            return None
        pool = {p.id for p in self.retriever.search(question, top_k=LATER_PART_POOL).passages}
        return best if best.id in pool else None

    def settle(self, plan: Plan, text: str, *, generation_s: float = 0.0, stop_reason: StopReason = "stop") -> Answer:
        """The second half: generated text -> Answer (refusal, echo, citations).

        `stop_reason` reaches the Answer only when the model's own text is shown: a refusal
        or the passage fallback replaces a cut reply with a complete one ("stop").
        """
        if plan.final is not None:
            return plan.final
        if not plan.options.use_retrieval:
            text, refused = settle_generated(text, plan.question, with_context=False)
            shown = "stop" if refused else stop_reason
            return self._answer(plan, text, refused=refused, used_retrieval=False, generation_s=generation_s, stop_reason=shown)
        text, refused = settle_generated(text, plan.question)
        cited = [] if refused else find_citations(text, plan.passages, getattr(self.retriever, "tokenizer", None))
        fallback = self._fallback_reason(plan, text, refused, cited)
        if fallback:
            best = plan.passages[0]
            text, cited, extra = self._with_later_part(plan, f"{best.text} [{best.id}]", [Citation(best.id, "passage", 1.0)])
            return self._answer(
                plan, text, citations=[c.id for c in cited], citation_details=cited,
                fallback=fallback, generation_s=generation_s, **extra,
            )
        if cited:
            text = align_written_citations(close_cut_citation(text, cited), cited, self.retriever.document_ids)
        extra: dict[str, object] = {}
        if not refused:
            text, cited, extra = self._with_later_part(plan, text, cited)
        return self._answer(
            plan, text, refused=refused, citations=[c.id for c in cited], citation_details=cited, generation_s=generation_s,
            stop_reason="stop" if refused else stop_reason, **extra,
        )

    @staticmethod
    def _with_later_part(plan: Plan, text: str, cited: list[Citation]) -> tuple[str, list[Citation], dict[str, object]]:
        """`text` with the passage for the question's later part appended, unless it is cited.

        Returns the text, its citations and the Answer fields that say so (`later_part`, and
        `passages` when that passage was not among the prompt's).
        """
        later = plan.later_part
        if later is None or any(c.id == later.id for c in cited):
            return text, cited, {}
        fields: dict[str, object] = {"later_part": later.id}
        if all(p.id != later.id for p in plan.passages):
            fields["passages"] = [*plan.passages, later]
        return f"{text}\n\n{later.text} [{later.id}]", [*cited, Citation(later.id, "later_part", 1.0)], fields

    def _fallback_reason(self, plan: Plan, text: str, refused: bool, cited: list[Citation]) -> str:
        """Why the best passage should replace the model's text, or "" (RagConfig.passage_fallback).

        The plan passed the refusal gate, so retrieval is confident. A 270M model then still
        declines questions worded unlike the KB, or copies the passage whose first words
        match the question's subject rather than the one that answers it (issue 26: 18 of
        61 user-dev answers came from a passage other than the best, 3 of them better), or
        copies the best passage's opening and stops (seed: 9 of 28 answers). An answer no
        retrieved passage supports (no citation found by id or overlap) is invented text: a
        2026-12-07 adapter answered "종횡비가 큰 트렌치에서 퍼지를 왜 길게?" with "식량의 크기는
        트렌치와 홀 사이에 큰 차이가 없다. [purge-004]".
        """
        if not self.config.passage_fallback or not plan.passages:
            return ""
        if refused:
            return "model_refused"
        if cited and plan.passages[0].id not in {c.id for c in cited}:
            return "other_passage"
        if not cited:
            return "unsupported"
        if quotes_part_of(text, plan.passages[0].text):
            return "partial_copy"
        return ""

    def run(self, plan: Plan, *, stream: bool = True) -> Iterator[str | Answer]:
        """Generate from a plan: text pieces when streaming, then the final Answer."""
        if plan.final is not None:
            yield plan.final.text
            yield plan.final
            return
        assert plan.messages is not None
        started = time.perf_counter()
        options = plan.options
        if stream:
            pieces: list[str] = []
            tracked = TrackedStream(self.generator.stream(plan.messages, max_new_tokens=plan.max_new_tokens, adapter=options.adapter))
            for piece in tracked:
                pieces.append(piece)
                yield piece
            text, stop_reason = "".join(pieces).strip(), tracked.stop_reason
        else:
            reply = self.generator.reply(plan.messages, max_new_tokens=plan.max_new_tokens, adapter=options.adapter)
            text, stop_reason = reply.text, reply.stop_reason
        yield self.settle(plan, text, generation_s=time.perf_counter() - started, stop_reason=stop_reason)

    def stream_answer(self, question: str, options: AskOptions = AskOptions()) -> Iterator[str | Answer]:
        """Text pieces, then the final Answer (for server-sent events and `chat`)."""
        yield from self.run(self.plan(question, options))

    def answer(self, question: str, options: AskOptions = AskOptions()) -> Answer:
        """Answer one question, not streamed."""
        final: Answer | None = None
        for item in self.run(self.plan(question, options), stream=False):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def refusal_reason(self, retrieval: Retrieval) -> str | None:
        """`refusal_reason` with this assistant's threshold and settings."""
        return refusal_reason(
            retrieval, self.retriever.threshold,
            check_names=self.config.refuse_unknown_names, check_site=self.config.refuse_site_specific,
        )

    def search(self, question: str, *, top_k: int | None = None, filter_keyword: str | None = None) -> Retrieval:
        """Retrieval only (bench and tools that show passages without answering)."""
        return self.retriever.search(question, top_k=top_k, filter_keyword=filter_keyword)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _planned(plan: Plan, started: float) -> Plan:
        plan.planning_s = time.perf_counter() - started
        if plan.final is not None:
            plan.final.latency_s = round(plan.planning_s, 4)
        return plan

    def _answer(
        self, plan: Plan, text: str, *, model: str | None = None, generation_s: float = 0.0, **fields: object
    ) -> Answer:
        """An Answer for `plan`: who answered (model, engine) and how long it took."""
        engine = str(getattr(self._generator, "engine", "")) if self._generator is not None else ""
        fields.setdefault("passages", plan.passages)
        fields.setdefault("confidence", plan.confidence)
        return Answer(
            question=plan.question,
            text=text,
            model=(plan.options.model or "base") if model is None else model,
            engine=engine,
            latency_s=round(plan.planning_s + generation_s, 4),
            **fields,  # type: ignore[arg-type]
        )
