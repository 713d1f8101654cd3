"""Korean morphological tokenizer for BM25 (kiwipiepy) with the KB's domain terms.

Why not whitespace tokens: Korean attaches particles to nouns ("로드락이", "로드락의"), so a
whitespace BM25 never matches "로드락" against "로드락이". Kiwi splits them; the KB's
keywords and synonyms are added as user words so compounds such as "로드락" or
"챔버 벽" stay one token instead of being cut into unrelated morphemes.

Latin/digit terms (VG12, Al2O3, TMA, sccm) are taken by a regex instead of Kiwi:
Kiwi's user words are case-sensitive and it splits "vg12" into "vg"+"12", while
users type them in any case.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

#: Kiwi tags kept as index terms: nouns, roots, numerals, hanja, verb/adjective stems.
CONTENT_TAGS = {"NNG", "NNP", "NR", "XR", "SH", "VV", "VA", "VV-R", "VV-I", "VA-R", "VA-I"}
#: Light verbs and auxiliaries: in every question ("알려줘", "되나요"), no topical meaning.
#: Other one-syllable stems stay: 짧다/길다/높다/낮다 decide which document answers.
LIGHT_STEMS = {"하", "되", "있", "없", "같", "보", "주", "않", "말", "나", "오", "가", "받", "알", "싶", "드리", "그렇", "이렇", "어떻"}

#: Question words and light nouns that appear in any question; as BM25 terms they only add
#: noise to the absolute scores used for out-of-KB detection.
STOPWORDS = {"때", "어떻", "어떠", "무엇", "경우", "왜", "어디", "언제", "얼마", "정도", "관련", "대하"}

_ASCII_TERM = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9+\-.]*[A-Za-z0-9+])?")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
_HAS_ALPHA = re.compile(r"[A-Za-z]")

#: Version of the tokenisation rules; part of the index cache key.
TOKENIZER_VERSION = "kiwi-ascii-v3"


def ascii_terms(text: str) -> list[str]:
    """Case-folded Latin/digit terms; hyphenated terms also yield their parts."""
    out: list[str] = []
    for match in _ASCII_TERM.finditer(text):
        term = match.group(0).casefold().rstrip(".")
        if not term:
            continue
        if not _HAS_ALPHA.search(term) and len(term) < 2:
            continue  # lone digits ("3 단계") are noise
        out.append(term)
        if "-" in term:
            out.extend(p for p in term.split("-") if len(p) > 1)
    return out


#: Latin/digit names as written (case kept): "ASM", "HfO2", "E-2041", "30kVA".
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")
_NUMBER_UNIT = re.compile(r"^\d+(?:\.\d+)?([a-z%]+)$")
#: Capitalised English function words that start an English question ("What is ALD?").
_ENGLISH_STOPWORDS = {
    "what", "how", "why", "when", "where", "which", "who", "is", "are", "was", "the", "an", "can", "could",
    "do", "does", "did", "should", "would", "will", "please", "tell", "explain", "give", "list", "in", "on",
    "of", "for", "and", "or", "if", "my", "our", "we", "you", "it", "this", "that", "there", "about", "ok",
}


def name_terms(text: str) -> list[tuple[str, str]]:
    """(as written, index form) of the Latin/digit *names* in `text`.

    A name is a term with an upper-case letter or with letters and digits ("ASM", "Pulsar",
    "HfO2", "E-2041"): the kind of word that names one tool, vendor, material or alarm.
    Lower-case words ("purge", "sccm") and bare numbers are not names: users write plain
    English words the KB may spell in Korean, and numbers vary freely. "300mm" is the
    number 300 with the unit "mm", so only the unit is checked.
    """
    out: list[tuple[str, str]] = []
    for match in _NAME.finditer(text):
        written = match.group(0).rstrip(".")
        folded = written.casefold()
        if len(folded) < 2 or not _HAS_ALPHA.search(folded) or folded in _ENGLISH_STOPWORDS:
            continue
        unit = _NUMBER_UNIT.match(folded)
        if unit:
            if len(unit.group(1)) >= 2:
                out.append((written, unit.group(1)))
            continue
        has_digit = any(c.isdigit() for c in folded)
        if has_digit or written != folded:
            out.append((written, folded))
    return out


class KoreanTokenizer:
    """Thread-safe tokenizer: Hangul morphemes from Kiwi plus Latin/digit terms."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        from kiwipiepy import Kiwi

        # No typo or multi-word proper-noun dictionaries: they double the start-up time
        # (2.6 s -> 5.3 s measured here) and the KB's own terms come in as user words.
        self._kiwi = Kiwi(load_typo_dict=False, load_multi_dict=False)
        self._lock = threading.Lock()
        self.user_words = sorted({w.strip() for w in user_words if _HANGUL.search(w or "")})
        for word in self.user_words:
            # Score 0 keeps the word competitive without forcing it inside other words.
            self._kiwi.add_user_word(word, "NNP", 0)
        self._kiwi.tokenize("워밍업 문장입니다")  # the first call loads Kiwi's model (~1 s)

    def tokenize(self, text: str) -> list[str]:
        """Index terms of one text, in order, with repeats (BM25 counts them)."""
        with self._lock:
            morphs = self._kiwi.tokenize(text)
        return self._hangul_terms(morphs) + ascii_terms(text)

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Batch variant (Kiwi analyses a batch faster than one call per text)."""
        with self._lock:
            analysed = list(self._kiwi.tokenize(list(texts)))
        return [self._hangul_terms(m) + ascii_terms(t) for m, t in zip(analysed, texts, strict=True)]

    @staticmethod
    def _hangul_terms(morphs: Iterable[Any]) -> list[str]:
        terms: list[str] = []
        for token in morphs:
            if token.tag not in CONTENT_TAGS:
                continue
            form = token.form
            if form in STOPWORDS or form in LIGHT_STEMS:
                continue
            parts = [p for p in form.split() if _HANGUL.search(p)]
            if " " in form:
                terms.append("_".join(form.casefold().split()))  # the compound itself
            terms.extend(p.casefold() for p in parts)
        return terms


@lru_cache(maxsize=8)
def _cached_tokenizer(user_words: tuple[str, ...]) -> KoreanTokenizer:
    return KoreanTokenizer(user_words)


def get_tokenizer(user_words: Iterable[str] = ()) -> KoreanTokenizer:
    """A process-wide tokenizer per user-word set (Kiwi takes ~1 s to build)."""
    return _cached_tokenizer(tuple(sorted(set(user_words))))
