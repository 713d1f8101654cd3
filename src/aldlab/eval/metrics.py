"""Answer-level metrics and their aggregation with bootstrap confidence intervals.

Why these choices (measured on the seed set and the embedded model):
- Key-fact matching ignores case and spaces: Korean spacing varies freely
  ("자기 제한" / "자기제한"), and a fact should not be lost to a space.
- ROUGE-L runs on Kiwi morphemes: `rouge_score`'s default tokenizer keeps only [a-z0-9]
  and silently drops every Hangul character, so a Korean answer scored 0 against any
  reference. Morphemes also make "퍼지가"/"퍼지를" share the noun "퍼지".
- chrF (sacrebleu) works on character n-grams, so it needs no Korean tokenizer.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aldlab.prompts import RAG_INSTRUCTION, SYSTEM_PROMPT, is_refusal

#: Kiwi tags dropped before ROUGE-L: punctuation and symbols carry no content.
_PUNCT_TAGS = {"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB"}

#: Special/control tokens that must never leak into an answer (Gemma, Qwen/ChatML, Llama).
CONTROL_TOKEN_RE = re.compile(
    r"<start_of_turn>|<end_of_turn>|<eos>|<bos>|<pad>|<unk>|<mask>|<unused\d+>"
    r"|<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|start_header_id\|>"
    r"|<\|end_header_id\|>|<\|begin_of_text\|>|</s>|<s>|\[INST\]|\[/INST\]"
)
_HANGUL_RE = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
#: CJK ideographs (Chinese characters / Hanja), which a Korean answer should not contain.
_HAN_RE = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")


def normalize(text: str) -> str:
    """NFC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _squash(text: str) -> str:
    return normalize(text).replace(" ", "")


def keyfact_hits(answer: str, expect: Sequence[Sequence[str]]) -> list[bool]:
    """For each key-fact group, whether any alternative occurs in the answer."""
    squashed = _squash(answer)
    return [any(_squash(alt) and _squash(alt) in squashed for alt in group) for group in expect]


def keyfact_recall(answer: str, expect: Sequence[Sequence[str]]) -> float | None:
    """Share of key-fact groups satisfied; None when the question has no key facts."""
    if not expect:
        return None
    hits = keyfact_hits(answer, expect)
    return sum(hits) / len(hits)


@functools.lru_cache(maxsize=1)
def _kiwi() -> Any:
    from kiwipiepy import Kiwi

    return Kiwi()


def morphemes(text: str) -> list[str]:
    """Kiwi morpheme forms without punctuation, Latin text lower-cased."""
    if not text.strip():
        return []
    return [tok.form.casefold() for tok in _kiwi().tokenize(text) if tok.tag not in _PUNCT_TAGS]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)*len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 on Kiwi morphemes (0..1)."""
    hyp, ref = morphemes(answer), morphemes(reference)
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _chrf() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def chrf(answer: str, reference: str) -> float:
    """Sentence chrF (sacrebleu defaults: char 6-grams, beta 2), scaled to 0..1."""
    return float(_chrf().sentence_score(answer, [reference]).score) / 100.0


# --- word salad: repetition, prompt echo, support ----------------------------------------

#: Word n-gram size of the repetition and echo measures. Korean words (eojeol) carry their
#: particles, so three in a row are specific: a clean answer rarely repeats one.
NGRAM = 3
#: "Has repetition" from this share of repeated word 3-grams. Measured on clean Korean
#: text: the 68 reference answers of evalsets/*.jsonl reach at most 0.105 and the 434 KB
#: documents at most 0.103 (one procedure written out twice; all others <= 0.051), and 22
#: coherent ft+rag answers of a 128-token fine-tuning trial (2026-11-29) 0.0. The loops
#: quoted in issue 16 score far above: one sentence three times 0.64, "10 ms, 20 ms, ..."
#: 0.79, "[purge-003] [purge-003] ..." 0.25; the same trial's two loops (shuffled citation
#: ids, a refusal line repeated) 0.56 and 0.75. 0.15 sits between with a margin both sides. (Salad that never repeats three words in a row, e.g. a 13-word
#: excerpt "…앞면에서 반짝이로 막이 자라면서 앞면에서 반짝이로…" at 0.11, is below it:
#: support and the LLM judge are the checks for incoherence without loops.)
REPETITION_THRESHOLD = 0.15
#: "Has echo" from this share of word 3-grams copied from the system prompt, the RAG
#: instruction or the question. Clean references restate their question at most 0.069
#: (of 68); an echoed system prompt scores 1.0, and an answer that is half echo 0.5.
#: 0.25 keeps a 3.6x margin above clean restatements.
ECHO_THRESHOLD = 0.25

_EDGE_PUNCT = re.compile(r"^[^\w\[\]]+|[^\w\[\]]+$")
_DIGITS = re.compile(r"\d+")


def words(text: str) -> list[str]:
    """Normalised words: case-folded, edge punctuation dropped, every number as "0", every
    citation tag ("[purge-003]") as "[cite]".

    Loops repeat a pattern, not its particulars: a counting loop ("10 ms, 20 ms, 30 ms, …",
    issue 16) changes its digits, and a citation loop shuffles its ids ("[ald-basics-006]
    [ald-basics-003] [flow-025] [ald-basics-003] …", a fine-tuned answer of 2026-11-29).
    """
    out = []
    for raw in normalize(CONTROL_TOKEN_RE.sub(" ", text)).split():
        word = _EDGE_PUNCT.sub("", raw)
        word = "[cite]" if word.startswith("[") else _DIGITS.sub("0", word)
        if word:
            out.append(word)
    return out


def word_ngrams(text: str, n: int = NGRAM) -> list[tuple[str, ...]]:
    tokens = words(text)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repetition(text: str, n: int = NGRAM) -> float:
    """Share of the answer's word n-grams that repeat an earlier one (0 = none, ->1 = a loop)."""
    grams = word_ngrams(text, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def echo(text: str, question: str = "", n: int = NGRAM) -> float:
    """Share of the answer's word n-grams copied from the prompt's own words.

    The prompt's words are the system prompt, the RAG instruction with its section labels,
    and the question; the contexts are not (quoting them is the point of RAG).
    """
    grams = word_ngrams(text, n)
    if not grams:
        return 0.0
    prompt = f"{SYSTEM_PROMPT}\n{RAG_INSTRUCTION}\n참고 문서:\n질문: {question}"
    source = set(word_ngrams(prompt, n))
    return sum(g in source for g in grams) / len(grams)


def support(text: str, contexts: Sequence[str]) -> float | None:
    """Share of the answer's content morphemes (Kiwi nouns, roots, stems, Latin terms; the
    BM25 tokenizer of `aldlab.rag.tokenize`) that occur in the given contexts.

    Unique terms: a loop repeating one supported word must not raise its score. None when
    there are no contexts or the answer has no content terms.
    """
    if not contexts:
        return None
    from aldlab.rag.tokenize import get_tokenizer

    answer_terms, *context_terms = get_tokenizer().tokenize_many([text, *contexts])
    answer_set = set(answer_terms)
    if not answer_set:
        return None
    found = set().union(*map(set, context_terms))
    return len(answer_set & found) / len(answer_set)


@dataclass
class KoreanCheck:
    """How Korean an answer is."""

    hangul_share: float  # Hangul letters / all letters (0 for an empty answer)
    has_han: bool  # stray Chinese characters
    has_control: bool  # leaked special tokens
    ok: bool  # mostly Hangul, no Chinese characters, no control tokens


def korean_check(text: str, *, min_share: float = 0.5) -> KoreanCheck:
    """Share of Hangul among letters plus the two defects a small model shows most."""
    has_control = bool(CONTROL_TOKEN_RE.search(text))
    clean = CONTROL_TOKEN_RE.sub(" ", text)
    letters = [c for c in clean if c.isalpha()]
    hangul = sum(1 for c in letters if _HANGUL_RE.match(c))
    share = hangul / len(letters) if letters else 0.0
    has_han = bool(_HAN_RE.search(clean))
    return KoreanCheck(share, has_han, has_control, share >= min_share and not has_han and not has_control)


def answer_metrics(
    answer: str,
    *,
    expect: Sequence[Sequence[str]],
    reference: str | None,
    refused: bool | None = None,
    question: str = "",
    contexts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every per-answer metric in one dict (None where a metric does not apply).

    `contexts` are the passages a RAG system was given (None for closed-book): support is
    measured against them, and only for answers that are not refusals.
    """
    korean = korean_check(answer)
    refused = bool(refused) if refused is not None else is_refusal(answer)
    rep, copied = repetition(answer), echo(answer, question)
    return {
        "keyfact_recall": keyfact_recall(answer, expect),
        "keyfact_hits": keyfact_hits(answer, expect),
        "refused": refused,
        "rouge_l": rouge_l(answer, reference) if reference else None,
        "chrf": chrf(answer, reference) if reference else None,
        "hangul_share": korean.hangul_share,
        "has_han": korean.has_han,
        "has_control": korean.has_control,
        "korean_ok": korean.ok,
        "length_chars": len(answer.strip()),
        "repetition": rep,
        "echo": copied,
        "support": None if refused or not contexts else support(answer, contexts),
        "has_repetition": rep >= REPETITION_THRESHOLD,
        "has_echo": copied >= ECHO_THRESHOLD,
    }


# --- aggregation ---------------------------------------------------------------------


@dataclass
class Estimate:
    """A statistic with its bootstrap 95% interval and the number of items behind it."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


#: What a table cell shows for a statistic that has no value (no items, or not applicable).
MISSING_VALUE = "–"


def format_estimate(est: Mapping[str, Any] | None, digits: int = 3, *, ci: bool = True, signed: bool = False) -> str:
    """`0.677 [0.534, 0.812]`: a statistic and its bootstrap 95% interval, as every table shows it.

    The interval is printed as its two ends, never as "± half-width": percentile bootstrap
    intervals are asymmetric near 0 and 1, where most of these rates live. Without an
    interval (one item, or `ci=False`) only the value is printed; `signed` puts a sign on
    every number (differences between systems).
    """
    value = (est or {}).get("value")
    if value is None:
        return MISSING_VALUE
    spec = f"{'+' if signed else ''}.{digits}f"
    text = f"{value:{spec}}"
    low, high = (est or {}).get("low"), (est or {}).get("high")
    if ci and low is not None and high is not None and low != high:
        text += f" [{low:{spec}}, {high:{spec}}]"
    return text


def bootstrap(
    items: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float | None],
    *,
    samples: int = 1000,
    seed: int = 42,
    confidence: float = 0.95,
) -> Estimate:
    """Percentile bootstrap over items (resampled with replacement)."""
    n = len(items)
    value = statistic(items) if n else None
    if value is None or n < 2 or samples < 1:
        return Estimate(value, value, value, n)
    rng = np.random.default_rng(seed)
    stats = []
    for idx in rng.integers(0, n, size=(samples, n)):
        s = statistic([items[i] for i in idx])
        if s is not None and not math.isnan(s):
            stats.append(s)
    if not stats:
        return Estimate(value, None, None, n)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high), n)


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def bootstrap_mean(values: Sequence[float], *, samples: int = 1000, seed: int = 42) -> Estimate:
    """Mean with a bootstrap CI (values that are None are dropped before)."""
    clean = [float(v) for v in values if v is not None]
    if len(clean) >= 2 and samples > 0:
        # Vectorised: the same estimator as `bootstrap` but ~100x faster for a mean.
        arr = np.asarray(clean)
        rng = np.random.default_rng(seed)
        means = arr[rng.integers(0, len(arr), size=(samples, len(arr)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        return Estimate(float(arr.mean()), float(low), float(high), len(arr))
    value = mean_or_none(clean)
    return Estimate(value, value, value, len(clean))


def refusal_precision(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """pairs = (refused, should_refuse). Of the refusals, the share that were right."""
    refused = [should for did, should in pairs if did]
    return sum(refused) / len(refused) if refused else None


def refusal_recall(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Of the questions that should be refused (unanswerable), the share refused."""
    should = [did for did, must in pairs if must]
    return sum(should) / len(should) if should else None


def false_refusal_rate(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Of the answerable questions, the share wrongly refused."""
    answerable = [did for did, must in pairs if not must]
    return sum(answerable) / len(answerable) if answerable else None


def refusal_f1(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    p, r = refusal_precision(pairs), refusal_recall(pairs)
    if p is None or r is None or p + r == 0:
        return None if r is None else 0.0
    return 2 * p * r / (p + r)


MEAN_METRICS = (
    "keyfact_recall", "rouge_l", "chrf", "hangul_share", "korean_ok", "length_chars", "latency_s",
    "repetition", "echo", "support",
)


def summarize_rows(rows: Sequence[dict[str, Any]], *, samples: int = 1000, seed: int = 42) -> dict[str, Any]:
    """Aggregate per-answer rows of one system (each row: metrics + answerable + latency_s)."""
    out: dict[str, Any] = {"n": len(rows)}
    answerable = [r for r in rows if r["answerable"]]
    for name in MEAN_METRICS:
        source = answerable if name in {"keyfact_recall", "rouge_l", "chrf"} else rows
        values = [float(r[name]) for r in source if r.get(name) is not None]
        out[name] = bootstrap_mean(values, samples=samples, seed=seed).to_json()
    pairs = [(bool(r["refused"]), not r["answerable"]) for r in rows]
    for name, fn in (
        ("refusal_precision", refusal_precision),
        ("refusal_recall", refusal_recall),
        ("refusal_f1", refusal_f1),
        ("false_refusal_rate", false_refusal_rate),
    ):
        out[name] = bootstrap(pairs, fn, samples=samples, seed=seed).to_json()
    # Word salad: the share of all answers (refusals included: they are answers a user
    # reads) that loop or echo the prompt. Issue 16's target for ft+rag is <= 5%.
    flags = [float(bool(r.get("has_repetition")) or bool(r.get("has_echo"))) for r in rows]
    out["repetition_or_echo_rate"] = bootstrap_mean(flags, samples=samples, seed=seed).to_json()
    out["repetition_rate"] = mean_or_none([float(bool(r.get("has_repetition"))) for r in rows])
    out["echo_rate"] = mean_or_none([float(bool(r.get("has_echo"))) for r in rows])
    out["refusals"] = sum(1 for did, _ in pairs if did)
    out["unanswerable"] = sum(1 for _, must in pairs if must)
    out["han_rate"] = mean_or_none([float(r["has_han"]) for r in rows])
    out["control_token_rate"] = mean_or_none([float(r["has_control"]) for r in rows])
    return out


def group_keyfact_recall(rows: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Key-fact recall (mean, n) per value of `key` (topic or difficulty), answerable only."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        if r["answerable"] and r.get("keyfact_recall") is not None:
            groups.setdefault(r[key], []).append(float(r["keyfact_recall"]))
    return {k: {"value": mean_or_none(v), "n": len(v)} for k, v in groups.items()}
