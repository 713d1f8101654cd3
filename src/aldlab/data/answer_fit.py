"""Does the answer answer the question? Cue rules behind three `aldlab data review` checks.

Issue 21: rows built from one KB sentence passed every earlier check and still asked one
thing and answered another: "ALD Pulse는 무슨 일을 해?" → "ALD Pulse는 이보다 훨씬 짧으므로
MFC는…" (a comparison with a sentence the answer leaves out, about the MFC), "…어디부터 확인하면
될까요?" → "…고갈이 원인이었던 것이다." (a conclusion, no check). Each rule below is a short list
of Korean cues a reviewer can read and argue with; a finding names the cue that fired, so a
wrong flag is fixed by editing a list, not by tuning a score.

Only the answer's first sentence is judged: later sentences may lean on it ("그래서…"), and
an answer whose first sentence is sound reads as an answer to the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aldlab.data.facts import Candidate
from aldlab.data.sentences import CONNECTIVE
from aldlab.text import split_sentences

# ------------------------------------------------------------------ dangling reference

#: Morphemes that point at something said before (Kiwi tags): a determiner ("이 경우",
#: "이때" = 이 + 때, "그런 값"), a demonstrative pronoun ("이보다" = 이 + 보다, "이것은"),
#: a conjunctive adverb ("따라서", "그래서").
_BACK_MM = {"이", "그", "이런", "그런", "이러한", "그러한", "이와", "해당", "위", "앞"}
_BACK_NP = {"이", "그", "이것", "그것", "이곳", "그곳", "이들", "그들"}
#: A conclusion about an earlier observation: "…고갈이 원인이었던 것이다."
_RETROSPECTIVE = re.compile(r"(?:었|았|였|했)던 (?:것|셈)이다\.?$")
#: Kiwi's time grows faster than linearly with length; the first clause sits well inside this.
_HEAD_CHARS = 80


class Tagger(Protocol):
    """What `dangling_reference` needs from `questions.KiwiTagger` (tests may pass a stub)."""

    def tag(self, texts: list[str]) -> list[list]: ...


def back_reference(tokens: Sequence, text: str) -> str | None:
    """The first back-pointing morpheme before the first connective ending (EC) or comma, else None.

    After a connective ending the sentence has said something a reference can point at
    ("…들어가면 그 공간에…", "…완충 챔버로, … 이 공간만"), so only the first clause is judged;
    a conjunctive adverb counts only as the first word ("…, 그리고 제어 회로" lists). A
    demonstrative must start a word: Kiwi splits an unknown term ("로드락이" -> 로드 + 락 + 이/MM).
    """
    for i, tok in enumerate(tokens):
        if tok.tag == "EC" or tok.form == ",":
            return None
        starts_word = tok.start == 0 or text[tok.start - 1].isspace()
        demonstrative = (tok.tag == "MM" and tok.form in _BACK_MM) or (tok.tag == "NP" and tok.form in _BACK_NP)
        if (demonstrative and starts_word) or (tok.tag == "MAJ" and i == 0):
            return text[tok.start :].split()[0].rstrip(".,")  # the whole word: "이보다", not "이"
    return None


def dangling_reference(answer: str, tagger: Tagger) -> str | None:
    """The cue when the answer's first sentence leans on text the answer leaves out, else None.

    Three cases: it starts with a connective (`sentences.CONNECTIVE`: "예를 들어", "이때"), its
    first clause holds a back-reference ("ALD Pulse는 이보다 훨씬 짧으므로"), or it concludes
    from an earlier observation ("…원인이었던 것이다.").
    """
    sentences = split_sentences(answer)
    if not sentences:
        return None
    first = sentences[0]
    opening = CONNECTIVE.match(first)
    if opening:
        return opening.group(1).strip()
    head = first[:_HEAD_CHARS]
    back = back_reference(tagger.tag([head])[0], head)
    if back:
        return back
    retro = _RETROSPECTIVE.search(first)
    return retro.group(0).rstrip(".") if retro else None


def drop_dangling(candidates: Sequence[Candidate], tagger: Tagger) -> tuple[list[Candidate], int]:
    """The candidates whose answer does not lean on a missing sentence, and how many were dropped.

    The build's train side uses this (`DataConfig.drop_dangling`): a model trained on
    "ALD Pulse는 이보다 훨씬 짧으므로…" learns to answer with a comparison to nothing. Refusals
    and feedback answers are kept (a reviewer wrote or approved them). One verdict per fact:
    its wordings share the answer.
    """
    verdicts: dict[str, bool] = {}
    kept: list[Candidate] = []
    for cand in candidates:
        fact = cand.fact
        if fact.kind in ("kb", "combo"):
            if fact.fact_id not in verdicts:
                verdicts[fact.fact_id] = dangling_reference(cand.answer, tagger) is not None
            if verdicts[fact.fact_id]:
                continue
        kept.append(cand)
    return kept, len(candidates) - len(kept)


# ------------------------------------------------------------------ subject lost

#: Tags a subject phrase is made of: nouns, "의", "와/과", brackets and symbols ("TiCl4/NH3").
_SUBJECT_TAGS = {"NNG", "NNP", "NNB", "NR", "SL", "SN", "SH", "XSN", "XPN", "JKG", "JC", "SSO", "SSC", "SP", "SO", "SW"}
#: Causal endings after which a new 은/는 topic means the sentence is about that topic.
_CAUSAL_EC = {"므로", "으므로", "어서", "아서", "여서", "니까", "으니까"}
_NOUNS = {"NNG", "NNP", "NNB", "SL", "SN", "SH", "XSN", "NR"}
_PARTICLES = re.compile(r"(?:의|와|과|로|으로|을|를|에|에서|은|는|이|가)$")


@dataclass(frozen=True)
class QuestionSubject:
    text: str
    #: asks about the subject itself ("X는 무슨 일을 해?") rather than a condition of it
    about: bool


def question_subject(question: str, tagger: Tagger) -> QuestionSubject | None:
    """"ALD Pulse는 무슨 일을 해?" -> ("ALD Pulse", about=True); "VG12가 drift하면 어떻게 돼?" ->
    ("VG12", about=False); None when the question does not open on a noun phrase and 은/는/이/가."""
    q = question.strip()
    tokens = tagger.tag([q])[0]
    for i, tok in enumerate(tokens):
        if tok.tag in ("JX", "JKS") and tok.form in ("은", "는", "이", "가") and i > 0:
            text = re.sub(r"\([^)]*\)", "", q[: tok.start]).strip()
            conditional = re.match(r"\s*(?:자꾸 )?\S+면\s", q[tok.start + tok.len :])
            return QuestionSubject(text, about=not conditional) if len(text) >= 2 else None
        if tok.tag not in _SUBJECT_TAGS:
            return None
    return None


@dataclass
class Spellings:
    """Folds every spelling of a KB synonym group to one, so "바라트론" matches "Capacitance manometer"."""

    groups: Sequence[Sequence[str]]

    def __post_init__(self) -> None:
        pairs = [(s.casefold(), g[0].casefold()) for g in self.groups if g for s in g if s.strip()]
        pairs.sort(key=lambda p: len(p[0]), reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s, _ in pairs)) if pairs else None
        self._to = dict(pairs)

    def fold(self, text: str, *, keep_spaces: bool = False) -> str:
        low = text.casefold()
        if self._pattern is not None:
            low = self._pattern.sub(lambda m: self._to[m.group(0)], low)
        return low if keep_spaces else re.sub(r"\s+", "", low)


def _topics_after_cause(tokens: Sequence) -> tuple[str, str] | None:
    """(topic before, topic after) a causal clause: "ALD Pulse는 이보다 짧으므로 MFC는…" ->
    ("ALD Pulse", "MFC"); None when the sentence has no such shape."""
    topics: list[str] = []
    phrase: list[str] = []
    caused = False
    for tok in tokens:
        if tok.tag in _NOUNS:
            phrase.append(tok.form)
            continue
        if tok.tag == "JX" and tok.form in ("은", "는") and phrase:
            topics.append(" ".join(phrase))
            if caused:
                return (topics[0], topics[-1]) if len(topics) >= 2 else None
        if tok.tag == "EC":
            if tok.form in _CAUSAL_EC and topics:
                caused = True
            elif not caused:
                return None  # the first clause ends on something other than a cause
        phrase = []
    return None


def _opening(sentence: str) -> str:
    """The sentence up to its first 은/는/이/가 (its subject), at most 40 characters."""
    m = re.search(r"[가-힣A-Za-z0-9)](?:은|는|이|가)\s", sentence)
    return sentence[: m.end()] if m and m.end() <= 40 else sentence[:40]


def subject_lost(question: str, answer: str, spellings: Spellings, tagger: Tagger) -> str | None:
    """Why the answer's first sentence is not about the question's subject, else None.

    Two rules: none of the subject's words is in the first sentence or opens the second (the
    answer starts from another sentence), or the question asks about X itself and the first
    sentence has X only as the topic of a because-clause ("ALD Pulse는 이보다 짧으므로 MFC는…"
    is about the MFC).
    """
    subject = question_subject(question, tagger)
    sentences = split_sentences(answer)
    if subject is None or not sentences:
        return None
    first = sentences[0]
    words = [w for w in (_PARTICLES.sub("", w) for w in spellings.fold(subject.text, keep_spaces=True).split()) if len(w) >= 2]
    # A title answer may set the scene in one sentence and name the subject as the next one's
    # topic ("RF 발생기는 … 설계되어 있지만, … Matching network는 …"): that still answers.
    # Measured on three cpu-demo builds, flagging those too made 4 of 10 findings false.
    second = _opening(sentences[1]) if len(sentences) > 1 else ""
    if words and not any(w in spellings.fold(first) or w in spellings.fold(second) for w in words):
        return f"첫 문장에 '{subject.text}'가 없음 / the answer does not open on '{subject.text}'"
    if subject.about:
        shape = _topics_after_cause(tagger.tag([first[:_HEAD_CHARS * 2]])[0])
        if shape and not any(w in spellings.fold(shape[1]) for w in words):
            return f"'{shape[0]}'는 이유절에만, 문장 주제는 '{shape[1]}' / subject only in a because-clause, the sentence is about '{shape[1]}'"
    return None


# ------------------------------------------------------------------ intent mismatch

@dataclass(frozen=True)
class Intent:
    """What a question asks (cue in the question) and what an answer to it says (cue in the answer)."""

    name: str
    asks: re.Pattern[str]
    #: the answer must match this somewhere ...
    answers: re.Pattern[str]
    #: ... and its first sentence must not match this (a different intent's answer), when given
    not_answers: re.Pattern[str] | None = None


#: An operator's action as the main verb: "…비교한다.", "…확인해야 한다."
_ACTION_END = re.compile(
    r"(?:확인|점검|비교|교체|기록|측정|청소|세정|조정|보정|정비|수행|교정|재조정|조치|검사|분해|적용)(?:한다|해야 한다|하면 된다|하는 것이 좋다)\.?$"
)
INTENTS: tuple[Intent, ...] = (
    # "…면 어떻게 돼?" asks what happens; "…비교한다." tells the engineer what to do.
    Intent(
        "effect",
        re.compile(r"면 (?:어떻게 (?:돼|되나요|됩니까)|무슨 일이 생겨|어떤 (?:현상|결과|문제)|뭐가 문제)"),
        re.compile(r"."),
        _ACTION_END,
    ),
    # "ALD는 어떻게 이뤄져?" asks how it works; "…파티클 발생이 적다." names an advantage.
    Intent(
        "mechanism",
        re.compile(r"어떻게 이뤄져|어떤 방식으로 이루어|어떤 식으로 진행|어떻게 이루어지는지"),
        re.compile(r"."),
        re.compile(r"(?:적다|많다|유리하다|쉽다|좋다|좋아진다)\.?$"),
    ),
    Intent(
        "role",
        re.compile(r"무슨 일을 해|어떤 역할|역할은|기능이|기능은|담당해|어떤 용도|하는 일"),
        re.compile(
            r"역할|담당|기능|위해|위한|용도|쓰인다|쓴다|쓰는|사용|막는|막아|막기|제어|조절|측정|재는|잰다|공급|유지|분리|차단|보호|전달|옮기|"
            r"연결|감지|배기|가열|냉각|데운|보낸|만든|없앤|제거|읽|맞추|맞춘|보정|찾는|장치|부품"
        ),
    ),
    Intent(
        "cause",
        re.compile(r"왜 |이유(?:는|가|를)|원인(?:은|이|을)\s*(?:뭐|무엇|알려)"),
        re.compile(r"때문|므로|어서|아서|여서|해서|되어|하여|덕분|로 인해|원인|이유|위해|위한|려고|도록|하면|되면|으면|탓"),
    ),
    Intent(
        "downside",
        re.compile(r"단점|한계|약점|문제점|불리한 점"),
        re.compile(r"단점|한계|불리|어렵|느리|느려|떨어|나빠|비싸|늘어|늘고|문제|손상|제한|부담|줄어|커진|많아|쌓|오염|필요하다|없다|못"),
    ),
    Intent(
        "procedure",
        re.compile(r"어떻게 (?:해|하나요|합니까|해야|조치|대응)|어떤 조치|절차|순서(?:는|가|를)"),
        re.compile(r"한다|해야|하고|하여|해서|한 뒤|한 다음|먼저|다음|후에|뒤에|확인|점검|기록|비교|조정|조절|측정|닫|열|넣|흘리|바꾼|낮추|높이|줄이|늘리|쓴다|사용"),
    ),
    Intent(
        "value",
        re.compile(r"몇 |몇\s*[a-zA-Z%]|몇[가-힣]*[?]|얼마"),
        re.compile(r"\d|수십|수백|수천|수 ?[a-zA-Zμ]|약 |정도|이하|이상|범위"),
    ),
)


#: What the wrong-intent cue of an intent says instead (for the finding's reason).
_OTHER = {"effect": "an action, not what happens", "mechanism": "an advantage, not how it works"}
_KOREAN = {"mechanism": "방식", "effect": "결과", "role": "역할", "cause": "이유", "downside": "단점", "procedure": "방법", "value": "값"}


def intent_mismatch(question: str, answer: str) -> str | None:
    """The intent the question asks and the answer misses, else None.

    The asked intent's cue may be anywhere in the answer (a title answer often sets the scene
    first: "RF 전원은 대부분 13.56 MHz를 사용한다. 이 주파수는 … 할당되어…"); the wrong-intent
    cue is judged on the first sentence, the one a reader takes as the answer.
    """
    sentences = split_sentences(answer)
    if not sentences:
        return None
    for intent in INTENTS:
        if not intent.asks.search(question):
            continue
        if not intent.answers.search(answer):
            return f"{intent.name}: 답에 {_KOREAN[intent.name]} 단서가 없음 / the answer gives no {intent.name}"
        wrong = intent.not_answers.search(sentences[0]) if intent.not_answers is not None else None
        if wrong:
            return f"{intent.name}: 첫 문장이 다른 답으로 끝남 '{wrong.group(0)}' / the first sentence answers something else ({_OTHER[intent.name]})"
    return None
