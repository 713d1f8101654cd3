"""The assistant: retrieve, refuse when the KB cannot answer, otherwise generate with citations.

Refusal happens *before* the LLM: if the calibrated confidence of the retrieval is below
the threshold fitted on evalsets/dev.jsonl, the answer is the fixed refusal phrase from
`aldlab.prompts` and no model is loaded or called (so off-topic questions cost ~20 ms).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from aldlab import prompts
from aldlab.errors import UserError
from aldlab.kb.io import kb_signature, load_kb
from aldlab.kb.schema import KnowledgeBase
from aldlab.llm.generator import Generator
from aldlab.rag.config import RagConfig
from aldlab.rag.retriever import HybridRetriever, Retrieval
from aldlab.rag.types import Answer, Citation, Passage

#: Pronouns and deictic phrases that make a question depend on the previous turn.
ANAPHORA = re.compile(
    r"(그거|그것|그게|그건|그걸|그거를|이거|이것|이게|이건|저거|저것|거기|위의?\s?내용|"
    r"그\s?(?:장비|부분|값|방법|원인|현상|문제|단계|공정|부품|설정))"
)
_CITATION = re.compile(r"\[([^\[\]\s]{1,80})\]")

REFUSAL_REASON = "지식 베이스에서 이 질문과 관련된 문서를 찾지 못했습니다."


def refusal_reason(retrieval: Retrieval, threshold: float, *, check_names: bool = True) -> str | None:
    """Why the KB cannot answer this retrieval's question, or None when it can.

    The one pre-LLM refusal rule (the service and batched eval both call it): refuse when
    the question names something no KB document mentions (`Retrieval.unknown_names`), or
    when the calibrated confidence is below the threshold fitted on the dev set.
    """
    if check_names and retrieval.unknown_names:
        names = ", ".join(f"'{n}'" for n in retrieval.unknown_names[:3])
        return f"지식 베이스에 {names}에 대한 내용이 없습니다."
    if not retrieval.passages or retrieval.confidence < threshold:
        return REFUSAL_REASON
    return None


def model_refused(text: str) -> bool:
    """The model itself declined (the one classifier, `prompts.is_refusal`, shared with eval).

    An untuned base model often echoes the system prompt, which contains the phrase; that
    echo is not a refusal and must not hide the answer's citations — `is_refusal` knows.
    """
    return prompts.is_refusal(text)


_NOT_WORD = re.compile(r"[^0-9a-z\uac00-\ud7a3]+")
ECHO_REASON = "모델이 질문을 되풀이했을 뿐 답하지 못했습니다."


def _squash(text: str) -> str:
    return _NOT_WORD.sub("", _CITATION.sub("", text).casefold())


def echoes_question(text: str, question: str, *, slack: int = 10) -> bool:
    """True when the answer only repeats (part of) the question.

    A small model that finds nothing to say in the contexts often writes the question back
    ("CMP 공정에서 슬러리 pH는 어떻게 관리해?"). That is no answer: the user is better served
    by the refusal. Compared without spaces, punctuation and [id] tags; `slack` characters
    beyond the question ("…관리해? 입니다") still count as an echo.
    """
    answer, asked = _squash(text), _squash(question)
    if len(answer) < 6 or len(asked) < 6:
        return False
    return answer in asked or (answer.startswith(asked) and len(answer) - len(asked) <= slack)


def settle_generated(text: str, question: str, *, with_context: bool = True) -> tuple[str, bool]:
    """(text to show, refused) for a generated answer: the one rule for service and eval.

    The model's own refusal keeps its reason when the reason reads as one
    (`tidy_refusal`); an echo of the question becomes the refusal. `with_context` says
    whether the prompt held passages (the fallback reason names them or not).
    """
    if model_refused(text):
        return tidy_refusal(text, MODEL_REFUSAL_REASON if with_context else CLOSED_BOOK_REASON), True
    if echoes_question(text, question):
        return prompts.refusal_answer(ECHO_REASON), True
    return text, False


#: What a refusal says when the model's own reason is not a reason (with passages / closed-book).
MODEL_REFUSAL_REASON = "참고 문서에서 이 질문에 답할 근거를 찾지 못했습니다."
CLOSED_BOOK_REASON = "확실한 근거가 없어 답하지 않습니다."
#: A reason says what is missing: "…내용이 없습니다", "…찾을 수 없습니다", "…알 수 없습니다".
_NEGATION = re.compile(r"없|않|못|모릅|모르")
_REASON_MAX_CHARS = 100


def tidy_refusal(text: str, fallback: str = MODEL_REFUSAL_REASON) -> str:
    """The refusal phrase plus the model's first reason sentence, or a plain reason.

    The fine-tuned 270M model learnt reasons like "참고 문서에 X에 대한 내용이 없습니다", but
    sometimes writes the question back after the phrase ("관련 정보가 부족합니다. 참고 문서에는
    ALD 장비 가동률이 몇 %였는지 알려주세요."), copies a passage sentence with its [id], or
    loops. A reason is kept only when its first sentence is short, cites nothing and says
    that something is missing; otherwise the user reads `fallback`.
    """
    at = text.find(prompts.REFUSAL)
    rest = text[at + len(prompts.REFUSAL):] if at >= 0 else ""
    rest = rest.lstrip(" .,:;!\"'“”」』\n")
    sentences = _SENTENCE_END.split(rest.strip(), maxsplit=1) if rest.strip() else []
    reason = sentences[0].strip() if sentences else ""
    # A citation anywhere means the "reason" was copied from a passage.
    if reason and not _CITATION.search(rest) and _NEGATION.search(reason) and len(reason) <= _REASON_MAX_CHARS:
        return prompts.refusal_answer(reason)
    return prompts.refusal_answer(fallback)


#: A sentence counts as supported by a passage when at least this share of its content
#: morphemes (Kiwi nouns, roots and verb stems: `aldlab.rag.tokenize`) occurs in the
#: passage. Measured on the 120 RAG rows of a cpu-demo training set (687 sentence-passage
#: pairs, each answer citing one of its three given contexts): at 0.6 the cited passage
#: reaches it for 91% of the sentences and a non-cited context from the same prompt for
#: 2.5%; attributing each sentence to its best passage only, 217 of 217 sentences went to
#: the passage the reference answer cites and none to another (0.5 lets 7.7% of the
#: non-cited pairs through, 0.7 gains little: 1.1% and 90% recall).
SUPPORT_THRESHOLD = 0.6
#: Sentences with fewer content morphemes ("네.", "참고하세요.") say too little to attribute.
MIN_SUPPORT_TERMS = 3

_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer, with [id] tags removed (they are not content)."""
    return [s.strip() for s in _SENTENCE_END.split(_CITATION.sub(" ", text)) if s.strip()]


def _content_terms(texts: Sequence[str], tokenizer: Any) -> list[set[str]]:
    if tokenizer is None:
        from aldlab.rag.tokenize import get_tokenizer

        tokenizer = get_tokenizer()
    return [set(terms) for terms in tokenizer.tokenize_many(list(texts))] if texts else []


def _sentence_shares(text: str, passages: Sequence[Passage], tokenizer: Any) -> list[list[float]]:
    """For each measurable sentence, the share of its content morphemes found in each passage."""
    for p in passages:  # a bare id ("purge-003에 따르면") is a reference, not content
        text = text.replace(p.id, " ")
    sentences = split_sentences(text)
    if not sentences or not passages:
        return []
    terms = _content_terms([*sentences, *(p.text for p in passages)], tokenizer)
    sentence_terms, passage_terms = terms[: len(sentences)], terms[len(sentences) :]
    return [
        [len(words & p_words) / len(words) for p_words in passage_terms]
        for words in sentence_terms
        if len(words) >= MIN_SUPPORT_TERMS
    ]


def supporting_passages(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> dict[str, float]:
    """Passage id -> best support, for passages that are some sentence's best match >= threshold.

    Support of a sentence by a passage = share of the sentence's content morphemes found in
    the passage. Only the best passage of each sentence is credited, so a sentence whose
    words also appear in a neighbouring context does not make that context a citation.
    """
    return _best_support(_sentence_shares(text, passages, tokenizer), passages)


def _best_support(shares: list[list[float]], passages: Sequence[Passage]) -> dict[str, float]:
    found: dict[str, float] = {}
    for row in shares:
        best = max(range(len(passages)), key=lambda i: row[i])
        if row[best] >= SUPPORT_THRESHOLD:
            pid = passages[best].id
            found[pid] = max(found.get(pid, 0.0), round(row[best], 3))
    return found


def find_citations(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> list[Citation]:
    """The documents an answer relies on: cited as [id], named bare, or supporting a sentence.

    Never padded with the passages that were merely given: an answer that cites nothing
    and whose sentences no passage supports has no citations, and the UI says so. A small
    model often writes the id of a neighbouring context after a sentence taken from another
    one; an id the answer writes is kept only when its passage supports one of the answer's
    sentences (or when no sentence is long enough to check), so the citation list names the
    passage the text really comes from.
    """
    known = {p.id for p in passages}
    shares = _sentence_shares(text, passages, tokenizer)
    supported_any = {
        p.id for i, p in enumerate(passages) if any(row[i] >= SUPPORT_THRESHOLD for row in shares)
    }

    def checks_out(pid: str) -> bool:
        return not shares or pid in supported_any

    how: dict[str, str] = {}
    for cid in _CITATION.findall(text):
        if cid in known and checks_out(cid):
            how.setdefault(cid, "bracket")
    for p in passages:  # models often drop the brackets: "purge-003에 따르면"
        if p.id not in how and p.id in text and checks_out(p.id):
            how[p.id] = "mention"
    support = _best_support(shares, passages)
    for pid in support:
        how.setdefault(pid, "overlap")
    return [Citation(cid, kind, support.get(cid, 0.0)) for cid, kind in how.items()]


def align_written_citations(text: str, cited: Sequence[Citation], document_ids: Collection[str]) -> str:
    """Make the `[id]` tags in the answer text agree with its citation list.

    The model sometimes writes the id of a document other than the one its sentence comes
    from, even one that was not among the passages ("N2는 값이 싸서 … [interlock-021]" for a
    sentence of purge-012). `find_citations` already lists the passage that supports the
    sentence; here a written KB id that is not in that list becomes the best-supported
    passage's id, or goes when none is supported. Bracketed text that is no document id of
    this KB ("[sccm]") is left alone.
    """
    valid = {c.id for c in cited}
    supported = [c for c in cited if c.how == "overlap"]
    best = max(supported, key=lambda c: c.support).id if supported else None

    def fix(match: re.Match[str]) -> str:
        cid = match.group(1)
        if cid in valid or cid not in document_ids:
            return match.group(0)
        return f"[{best}]" if best else ""

    aligned = _CITATION.sub(fix, text)
    return re.sub(r"[ \t]+([.,!?])", r"\1", re.sub(r"[ \t]{2,}", " ", aligned)).strip() if aligned != text else text


def extract_citations(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> list[str]:
    """Ids of `find_citations`, in order: bracketed, then named, then supported."""
    return [c.id for c in find_citations(text, passages, tokenizer)]


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
        self._kb_signature = kb_signature(self.kb_path) if self.kb_path else None
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

    # ------------------------------------------------------------------ KB changes
    def reload_if_changed(self) -> bool:
        """Reload the KB and its index when the files on disk changed (True if reloaded)."""
        if self.kb_path is None:
            return False
        with self._reload_lock:
            signature = kb_signature(self.kb_path)
            if signature == self._kb_signature:
                return False
            kb = load_kb(self.kb_path)
            self._kb_signature = signature
            if kb.content_hash() == self.kb.content_hash():
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

    # ------------------------------------------------------------------ answering
    def answer(
        self,
        question: str,
        *,
        model: str = "base",
        use_retrieval: bool = True,
        history: Sequence[dict[str, str]] = (),
        top_k: int | None = None,
        filter_keyword: str | None = None,
        context_only: bool = False,
        max_new_tokens: int | None = None,
    ) -> Answer:
        """Answer one question (see module docstring for the refusal rule)."""
        final: Answer | None = None
        for item in self.stream_answer(
            question,
            model=model,
            use_retrieval=use_retrieval,
            history=history,
            top_k=top_k,
            filter_keyword=filter_keyword,
            context_only=context_only,
            max_new_tokens=max_new_tokens,
            _stream=False,
        ):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream_answer(
        self,
        question: str,
        *,
        model: str = "base",
        use_retrieval: bool = True,
        history: Sequence[dict[str, str]] = (),
        top_k: int | None = None,
        filter_keyword: str | None = None,
        context_only: bool = False,
        max_new_tokens: int | None = None,
        _stream: bool = True,
    ) -> Iterator[str | Answer]:
        """Yield text pieces, then the final Answer (for server-sent events)."""
        started = time.perf_counter()
        question = (question or "").strip()
        if not question:
            raise UserError("질문이 비어 있습니다.", "The question is empty.", hint='예 / e.g.: aldlab ask "ALD란?"')
        max_new_tokens = max_new_tokens or self.config.max_new_tokens
        adapter = None if model in ("", "base", None) else model
        turns = list(history)[-2 * self.config.history_turns :] if self.config.history_turns > 0 else []
        resolved = self.rewrite_followup(question, history)

        def done(text: str, **fields: Any) -> Answer:
            fields.setdefault("model", model or "base")
            if self._generator is not None and "engine" not in fields:
                fields["engine"] = str(getattr(self._generator, "engine", ""))
            return Answer(question=question, text=text, latency_s=round(time.perf_counter() - started, 4), **fields)

        if not use_retrieval:
            messages = prompts.build_messages(resolved, None, history=turns)
            text = yield from self._generate(messages, max_new_tokens, adapter, _stream)
            text, refused = settle_generated(text, question, with_context=False)
            yield done(text, used_retrieval=False, refused=refused)
            return

        retrieval = self.retriever.search(resolved, top_k=top_k, filter_keyword=filter_keyword)
        passages, confidence = retrieval.passages, round(retrieval.confidence, 4)
        reason = self.refusal_reason(retrieval)
        if reason:
            text = prompts.refusal_answer(reason)
            yield text
            yield done(text, passages=passages, confidence=confidence, refused=True, citations=[])
            return
        if context_only:
            text = prompts.format_context(passages, most_relevant_last=False)  # for reading: best first
            yield text
            # The contexts are shown as contexts: nothing was answered, so nothing is cited.
            yield done(text, passages=passages, confidence=confidence, citations=[], model="")
            return
        messages = prompts.build_messages(resolved, passages, history=turns)
        text = yield from self._generate(messages, max_new_tokens, adapter, _stream)
        text, refused = settle_generated(text, question)
        cited = [] if refused else find_citations(text, passages, getattr(self.retriever, "tokenizer", None))
        if cited:
            text = align_written_citations(text, cited, self.retriever.document_ids)
        yield done(
            text,
            passages=passages,
            confidence=confidence,
            refused=refused,
            citations=[c.id for c in cited],
            citation_details=cited,
        )

    def refusal_reason(self, retrieval: Retrieval) -> str | None:
        """`refusal_reason` with this assistant's threshold and settings (service and batched eval)."""
        return refusal_reason(retrieval, self.retriever.threshold, check_names=self.config.refuse_unknown_names)

    def _generate(
        self, messages: list[dict[str, str]], max_new_tokens: int, adapter: str | None, stream: bool
    ) -> Iterator[str]:
        """Run the generator, yielding pieces when streaming; returns the full text."""
        if not stream:
            return self.generator.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter)
        pieces = []
        for piece in self.generator.stream(messages, max_new_tokens=max_new_tokens, adapter=adapter):
            pieces.append(piece)
            yield piece
        return "".join(pieces).strip()

    def search(self, question: str, **kwargs: Any) -> Retrieval:
        """Retrieval only (for the web app's context view)."""
        return self.retriever.search(question, **kwargs)


def build_retriever(
    kb: KnowledgeBase, config: RagConfig, *, kb_source: str | Path | None = None, show_progress: bool = True
) -> HybridRetriever:
    """Retriever with its calibration: fitted on the dev set when it fits this KB, else default."""
    retriever = HybridRetriever.from_kb(kb, config, kb_source=kb_source, show_progress=show_progress)
    ensure_calibration(retriever, config)
    return retriever


def ensure_calibration(retriever: HybridRetriever, config: RagConfig) -> None:
    """Fit and store the calibration once per index and retrieval settings (~2 s)."""
    from aldlab.files import sha256_file
    from aldlab.rag.confidence import calibrate, devset_matches_kb
    from aldlab.settings import REPO_ROOT

    dev_path = config.dev_set or REPO_ROOT / "evalsets" / "dev.jsonl"
    settings = retrieval_settings(config)
    current = retriever.calibration.fitted_on
    if not Path(dev_path).exists():
        return
    if current.get("retrieval") == settings and current.get("dev_sha256") == sha256_file(dev_path)[:16]:
        return
    if not devset_matches_kb(dev_path, retriever.document_ids):
        return  # a user's own KB: the built-in default calibration applies
    calibration = calibrate(retriever, dev_path, names_refused=config.refuse_unknown_names)
    calibration.fitted_on["retrieval"] = settings
    retriever.set_calibration(calibration)


def retrieval_settings(config: RagConfig) -> dict[str, Any]:
    """The settings a calibration depends on (a change triggers a refit)."""
    return {
        # how the threshold is chosen (see confidence.calibrate)
        "refusal_rule": "unknown-names-v1" if config.refuse_unknown_names else "confidence-only",
        "candidates": config.candidates,
        "rrf_weight": config.rrf_weight,
        "rrf_k": config.rrf_k,
        "mmr_lambda": config.mmr_lambda,
        "synonym_weight": config.synonym_weight,
        "dense_model": config.dense_model,
        "reranker": config.reranker,
    }

