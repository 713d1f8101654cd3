"""Natural Korean questions whose answer is the part of a document that answers them.

The legacy generator asked "{keyword}에 대해 알려줘" and answered with any sentence that
shared the keyword. Here every question is derived from what a document actually says —
its title, or the subject and predicate of one of its sentences (found with Kiwi's
part-of-speech tags) — and the answer is a window of whole sentences around the sentence
that says it. Issue 11 measured what still went wrong and each rule below answers one class:

- a subject must make sense alone: no connective ("대신", "반면"), no demonstrative, no
  bare generic head ("주요 원인", "대표 조건") without a domain term qualifying it;
- a cause/problem/action wording only when the sentence states a cause/problem/action;
- a difference question only for a real "A와 B" pair (title or the KB's own comparison);
- a title keeps its qualifier ("ALD와 CVD의 증착 속도 차이는?", not "…의 차이는?");
- a keyword combination only when one sentence relates both keywords;
- an answer never opens with a sentence that needs the previous one, and is cut at sentence
  boundaries (`aldlab.data.sentences`).

Wordings come from the template banks in `aldlab.data.templates`.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aldlab.data.answer_fit import dangling_reference
from aldlab.data.facts import Fact
from aldlab.data.korean import josa
from aldlab.data.sentences import (
    ANSWER_MAX_CHARS,
    ANSWER_MIN_CHARS,
    BARE_BECAUSE,
    CONNECTIVE,
    answer_window,
    needs_previous,
    trim_answer,
)
from aldlab.data.templates import (
    ACTION,
    ALARM,
    ASKED,
    COMBO,
    CONSEQUENCE,
    DEFINITION,
    DETERMINED_BY,
    DIAGNOSE,
    DIFFERENCE,
    DIFFERENCE_QUALIFIED,
    DISTINGUISH,
    INFLUENCE,
    INFLUENCED,
    MECHANISM,
    PROBLEM,
    ROLE,
    SYMPTOM,
    SYMPTOM_CHECK,
    TITLE_ABOUT,
    TITLE_HOW,
    TITLE_PROCEDURE,
    TITLE_WHAT,
    TITLE_WHEN,
    TITLE_WHEN_HEAD,
    Bank,
    TemplatePicker,
)
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.text import split_sentences

_PAREN = re.compile(r"\s*\([^()]*\)")
# Tags Kiwi gives to the pieces of a plain noun phrase ("Carrier gas MFC의 유량").
_NOUNISH = {"NNG", "NNP", "NNB", "NR", "SL", "SN", "SH", "SO", "SW", "SS", "SSO", "SSC", "XSN", "XPN", "JKG", "JC", "MM", "XR", "W_SERIAL", "SP"}
# Tags allowed between a subject and the 면/으면 of a short condition ("너무 높아지면").
_CONDITION_TAGS = {"VV", "VA", "VX", "EP", "XSV", "XSA", "MAG", "EC", "NNG", "SN", "SL", "NNB", "JKB", "JKO", "VCN", "XSN", "MM", "ETN"}


def has_real_title(doc: Document) -> bool:
    """Legacy documents get their first clause as title; those titles are no topic."""
    head = doc.title.rstrip("…").strip()
    return bool(head) and not doc.text.strip().startswith(head) and len(head) <= 60


# ---------------------------------------------------------------- title questions

_REASON_HEADS = {"이유", "원인", "원리", "의미", "목적", "필요성", "한계", "위험", "장점", "단점", "특징", "특성", "효과", "영향", "증상", "문제", "역할", "기능", "개념", "정의"}
_HOW_HEADS = {"방법", "방식", "기준", "조건", "범위", "단계", "순서", "절차", "구성", "요소", "구조", "종류", "항목", "관계", "대책", "주기", "값", "요건", "설정", "선택"}
_QUALIFIED_DIFF = re.compile(r"^(?P<a>[^,:]+?)(?:와|과|vs\.?|VS|대비) (?P<b>[^,:]+?)의 (?P<q>[^,:]+ )?(?:차이|차이점|구분|비교)$")
_DISTINGUISH = re.compile(r"^(?P<a>[^,:]+?)(?:와|과) (?P<b>[^,:]+?)(?:은|는) (?P<q>.+?)(?:으로|로)? ?구분$")
_WHEN = re.compile(r"^(?P<when>.+ 때)(?:의 (?P<head>.+))?$")
_OF_HEAD = re.compile(r"^(?P<x>.+?)의 (?P<head>[^ ]+)$")
_CAUSED = re.compile(r"^(?P<cause>.+?)에 (?:의한|따른) (?P<sym>[^:]+)$")
_SYMPTOM_COLON = re.compile(r"^(?P<sym>[^:]+): (?P<cause>.+)$")
#: A title part that names something going wrong ("GPC 과다", "한쪽 치우침"), not a step ("이송 3단계").
_SYMPTOM_WORD = re.compile(r"과다|저하|불량|증가|감소|하락|파티클|불균일|치우침|오염|산화|박리|막힘|drift|튐|spike|불안정|실패|얇아|두꺼|변동|이상|손상|leak|Leak|누설|응축|석출|지연")
_ALARM_CAUSE = re.compile(r"^(?P<y>.*(?:알람|alarm|Alarm|ALARM))(?:의| 발생 시| 시)? (?:원인|점검|조치|대처|대응)")
#: A word that ends with a particle: the part is a clause, not a noun phrase
#: ("outgassing은 ROR 곡선 모양으로"). 이/가 are left out: too many nouns end in them (사이, 증가).
_PARTICLE_END = re.compile(r"[가-힣](은|는|을|를|으로|에서|에는|에서는)$")


def _phrase(text: str, max_words: int = 4) -> str | None:
    """`text` when it is a short noun phrase a question can use as a slot, else None."""
    text = _PAREN.sub("", text).strip()
    words = text.split()
    if not words or len(words) > max_words or any(_PARTICLE_END.search(w) for w in words):
        return None
    return text


_LATIN_WITH_PARTICLE = re.compile(r"([A-Za-z][A-Za-z0-9]*)(와|과|은|는|을|를|이|가)(?= )")


def agree_particles(text: str) -> str:
    """Re-agree particles after Latin terms in KB text pasted into a question ("Leak과" ->
    "Leak와"): the question must not teach a particle error the KB happens to contain."""
    pairs = {"와": "와/과", "과": "와/과", "은": "은/는", "는": "은/는", "을": "을/를", "를": "을/를", "이": "이/가", "가": "이/가"}
    return _LATIN_WITH_PARTICLE.sub(lambda m: josa(m[1], pairs[m[2]]), text)


def title_questions(title: str, tokens: Sequence, picker: TemplatePicker, k: int) -> tuple[str, list[str], list[str], list[str]] | None:
    """(intent, wordings, template ids, particle-bearing terms) for a title, or None when
    the title gives no question that its document answers as a whole."""
    t = agree_particles(title.strip().rstrip("?.").strip())
    for pattern, bank, intent in ((_QUALIFIED_DIFF, None, "difference"), (_DISTINGUISH, DISTINGUISH, "difference")):
        m = pattern.match(t)
        if not m:
            continue
        a, b = _phrase(m.group("a")), _phrase(m.group("b"))
        if not a or not b:
            return None
        q = (m.group("q") or "").strip()
        if bank is None:
            bank = DIFFERENCE_QUALIFIED if q else DIFFERENCE
        qs, tids = picker.pick(bank, k, a=a, b=b, q=q)
        return intent, qs, tids, [a, b, q] if q else [a, b]
    alarm = _ALARM_CAUSE.match(t)
    if alarm and _phrase(alarm.group("y"), 5):
        y = _phrase(alarm.group("y"), 5) or ""
        qs, tids = picker.pick(ALARM, k, y=y)
        return "troubleshooting", qs, tids, [y]
    for pattern in (_CAUSED, _SYMPTOM_COLON):
        m = pattern.match(t)
        sym = m.group("sym") if m else ""
        cause = _phrase(m.group("cause"), 6) if m else None
        # The cause goes into the question: "GPC 하락이 보이면 원인이 뭐야?" has many answers
        # in the KB, while the document states one of them.
        if m and cause and _phrase(sym, 4) and len(sym.split()) >= 2 and not re.search(r"[와과] ", sym) and _SYMPTOM_WORD.search(sym):
            y = _phrase(sym, 4) or ""
            bank = SYMPTOM_CHECK if cause.split()[-1] in _VERBAL_NOUNS else SYMPTOM  # "Leak 확인" is a step, not a cause
            qs, tids = picker.pick(bank, k, y=y, c=cause)
            return "troubleshooting", qs, tids, [y, cause]
    when = _WHEN.match(t)
    if when:
        w, head = when.group("when"), when.group("head")
        if head and _phrase(head, 2):
            qs, tids = picker.pick(TITLE_WHEN_HEAD, k, w=w, h=head)
            return "condition", qs, tids, [head]
        if not head:
            qs, tids = picker.pick(TITLE_WHEN, k, w=w)
            return "condition", qs, tids, []
        return None
    of = _OF_HEAD.match(t)
    if of and of.group("head") in {"정의", "개념", "의미", "뜻"} and _phrase(of.group("x")):
        x = _phrase(of.group("x")) or ""
        qs, tids = picker.pick(DEFINITION, k, x=x)
        return "definition", qs, tids, [x]
    if of and of.group("head") in {"역할", "기능", "목적"} and _phrase(of.group("x")):
        x = _phrase(of.group("x")) or ""
        qs, tids = picker.pick(ROLE, k, x=x)
        return "role", qs, tids, [x]
    if tokens and any(tok.tag in ("JX", "JKS") for tok in tokens):
        return _statement_title(t, tokens, picker, k)
    head = t.split()[-1] if t.split() else t
    bare_head = re.sub(r"^.*의", "", head)
    if head in _HOW_HEADS or bare_head in _HOW_HEADS:
        qs, tids = picker.pick(TITLE_HOW, k, t=t)
        return "title", qs, tids, [t]
    if head in _REASON_HEADS or bare_head in _REASON_HEADS:
        qs, tids = picker.pick(TITLE_WHAT, k, t=t)
        return "title", qs, tids, [t]
    if re.search(r"[은는이가을를에]$", head) or re.search(r"(다|함|됨|음|림|짐|임)$", head):
        return None  # a clause, not a topic: "…에 대해 설명해 주세요" would not read
    t = _PAREN.sub("", t).strip()
    if re.search(r"\d", " ".join(t.split()[-2:])):
        return None  # "1 Torr에서 N2 평균 자유 행로 약 50 μm" states a value; no topic to ask about
    if head.endswith("하기") or (head in _VERBAL_NOUNS and re.search(r"[가-힣A-Za-z0-9](으로|로) ", t)):
        qs, tids = picker.pick(TITLE_PROCEDURE, k, t=t)  # "OES로 플라즈마 상태 감시는 어떻게 하나요?"
        return "title", qs, tids, [t]
    qs, tids = picker.pick(TITLE_ABOUT, k, t=t)
    return "title", qs, tids, []


def _statement_title(t: str, tokens: Sequence, picker: TemplatePicker, k: int) -> tuple[str, list[str], list[str], list[str]] | None:
    """"VG13은 로드락 압력 게이지" asks what VG13 is; a verbal statement title ("Gate Valve는
    인터락 만족 시에만 열림") gives no question the whole document answers, so None."""
    parse = parse_sentence(tokens, t)
    if parse is None or parse.particle not in ("은", "는"):
        return None
    rest_tokens = [tok for tok in tokens if tok.start >= len(t) - len(parse.rest)]
    if not rest_tokens or any(tok.tag.startswith(("J", "E", "V", "XS")) for tok in rest_tokens):
        return None
    if rest_tokens[-1].tag not in ("NNG", "NNP", "SL") or not _CATEGORY_END.search(parse.rest):
        return None  # "표면 오염은 초기 성장 불량의 원인" says something about it; not what it is
    x = _PAREN.sub("", parse.subject).strip() or parse.subject
    qs, tids = picker.pick(DEFINITION, k, x=x)
    return "definition", qs, tids, [x]


#: Predicates that name what the subject is ("VG13은 로드락 압력 게이지", "sccm은 … 분당 유량").
_CATEGORY_END = re.compile(
    r"(장치|기술|공정|방식|단계|현상|센서|게이지|밸브|valve|Valve|부품|단위|물질|가스|구조|영역|비율|지표|기법|증착법|모드|챔버|게이트|유량|"
    r"두께|시간|압력|온도|전원|배관|라인|용기|계|기|판|막|gauge|controller)$"
)

#: Nouns that end a title as a verb would ("분리", "사용"): the title is a statement of action.
_VERBAL_NOUNS = {
    "분리", "사용", "필요", "감지", "구성", "결정", "제어", "조절", "측정", "유지", "방지", "완화", "검증", "권장", "금지", "제한",
    "차단", "공급", "제거", "보호", "확인", "판단", "증가", "감소", "변화", "개방", "동작", "작동", "관리", "설정", "적용", "선택",
    "허용", "요구", "비례", "의존", "발생", "형성", "이동", "전환", "교체", "보정", "조정", "운전", "활용", "결합", "흡착", "응축",
    "구분", "점검", "감시", "추정", "계산", "평가", "비교", "최적화",
}


# ------------------------------------------------------------- sentence questions

@dataclass
class SentenceParse:
    """Subject noun phrase of a sentence and what follows it."""

    subject: str
    particle: str  # 은/는/이/가 as written
    condition: str | None  # "너무 높아지면" when the predicate starts with a short condition
    rest: str


_DEF_END = re.compile(
    r"(장치|기술|공정|방법|방식|단계|현상|센서|게이지|밸브|부품|값|범위|단위|과정|물질|가스|구조|영역|상태|비율|지표|기법|증착법|원리|의미|모드|방식이다|기체|막|반응|양|압력|온도|구간)(이다|다)\.?$"
    r"|(의미한다|뜻한다|말한다|가리킨다|부른다)\.?$"
)
_COPULA_END = re.compile(r"(?<!높)(?<!줄)(?<!붙)(?<!보)(?<!기울)(?<!속)(?<!녹)(?<!때문)(?<!것)이다\.?$")
_ANAPHORA = re.compile(r"(^|\s)(이|그|이런|그런|이러한|그러한|해당|위의) [가-힣A-Za-z]")
_INFLUENCES_OTHER = re.compile(r"에\s*(큰\s*|직접\s*|직접적인\s*|많은\s*|상당한\s*)?영향을\s*(준다|미친다|주며|주고|주어|미쳐)")
_INFLUENCED = re.compile(r"영향을\s*(받는다|받으며|받아|받고)")
_ROLE = re.compile(r"(역할을 (한다|맡는다)|기능을 한다|담당한다|제어한다|조절한다|측정한다|유지한다|방지한다|제공한다|막는다|차단한다|공급한다|제거한다|보호한다|감지한다)\.?$")
_MECHANISM = re.compile(r"원리|이용해|이용하여|이용한다|반복하|순차적으로|을 통해|를 통해|방식으로")
_DETERMINED_BY = re.compile(r"(결정된다|좌우된다|정해진다)\.?$")
#: The sentence tells what to conclude or suspect: a diagnostic (symptom-first) question fits.
_INFERENCE = re.compile(r"(판단할 수|의심할 수|의심해야|의심한다|알 수 있|추정할 수|판단한다|원인일 가능성|원인으로 본다|가능성이 크다|가능성이 높다|원인이었던|원인이다|뜻이다)")
#: The sentence ends by prescribing an action: "어떻게 조치해야 하나요?" fits.
_ACTION_END = re.compile(r"(점검한다|확인한다|교체한다|조치한다|조정한다|낮춘다|높인다|늘린다|줄인다|세정한다|보정한다|바꾼다|해야 한다|하는 것이 좋다)\.?$")
#: The sentence states a problem (not just a change): "어떤 문제가 생기나요?" fits.
_PROBLEM = re.compile(r"나빠|떨어|저하|불량|파티클|막힌|막혀|오염|손상|실패|어긋|흔들|불안정|응축|석출|박리|누설|leak|리크|지연|늦어|멈춘|멈추|알람|인터락이 걸|타임아웃|timeout|overshoot|과다|부족|불균일|얇아|두꺼워|CVD성|CVD 성분|증가해 수율|위험")
_TOO_MUCH = {"높으면", "높아지면", "크면", "커지면", "많으면", "많아지면", "길면", "길어지면", "빠르면", "빨라지면"}
#: Subjects that name no concept on their own ("주요 원인은 …", "대표 조건은 …").
_GENERIC_HEADS = {
    "원인", "이유", "조건", "방법", "결과", "경우", "차이", "문제", "특징", "장점", "단점", "목적", "역할", "값", "기준", "범위", "사양",
    "효과", "영향", "방식", "순서", "단계", "핵심", "요인", "대책", "증상", "현상", "관계", "점", "것", "부분", "쪽", "정도", "수준", "시간", "속도",
    "사이", "위치", "앞", "뒤", "안", "밖", "위", "아래", "중", "동안", "전", "후",
}
_GENERIC_MODIFIERS = {"주요", "대표", "대표적인", "가장", "일반적인", "보통", "기본", "실제", "다른", "각", "두", "세", "이", "그", "같은", "전체", "대부분", "일부"}


def parse_sentence(tokens: Sequence, sentence: str) -> SentenceParse | None:
    """Subject before the first 은/는/이/가 when it is a plain noun phrase, else None."""
    for i, tok in enumerate(tokens):
        if tok.tag in ("JX", "JKS") and tok.form in ("은", "는", "이", "가") and i > 0:
            if not all(t.tag in _NOUNISH for t in tokens[:i]) or tokens[i - 1].tag in ("JKG", "JC", "MM"):
                return None
            if tokens[0].tag == "MM":
                return None  # "이 방식은": refers to an earlier sentence
            subject = sentence[: tok.start].strip()
            if not subject or len(subject) > 30 or "," in subject or subject.count("(") != subject.count(")"):
                return None
            rest_start = tok.start + tok.len
            return SentenceParse(subject, tok.form, _condition(tokens[i + 1 :], sentence, rest_start), sentence[rest_start:].strip())
        if i > 12:
            return None
    return None


def _condition(tokens: Sequence, sentence: str, start: int) -> str | None:
    for tok in tokens[:7]:
        if tok.tag == "EC" and tok.form in ("면", "으면"):
            text = sentence[start : tok.start + tok.len].strip()
            return text if 0 < len(text) <= 24 and "," not in text else None
        if tok.tag not in _CONDITION_TAGS:
            return None
    return None


def sentence_questions(parse: SentenceParse, picker: TemplatePicker, k: int) -> list[tuple[str, list[str], list[str]]]:
    """(intent, wordings, template ids) the sentence answers; empty when it answers no clear question."""
    s = _PAREN.sub("", parse.subject).strip() or parse.subject
    rest = parse.rest
    if BARE_BECAUSE.search(rest):
        return []  # "Ar의 열전도율은 … 때문이다" explains something else; it defines nothing
    if parse.condition and parse.particle in ("이", "가"):
        c = parse.condition
        if _INFERENCE.search(rest):
            qs, tids = picker.pick(DIAGNOSE, k, s=s, c=c)
            return [("troubleshooting", qs, tids)]
        bank: Bank = list(CONSEQUENCE)
        if _PROBLEM.search(rest):
            bank += PROBLEM
        if _ACTION_END.search(rest):
            bank += ACTION
        if c in _TOO_MUCH and "너무" not in c:
            bank.append(("cond-neomu", "{s|이/가} 너무 {c} 어떻게 되나요?"))
        qs, tids = picker.pick(bank, k, s=s, c=c)
        return [("condition", qs, tids)]
    if parse.particle not in ("은", "는"):
        return []
    for pattern, bank, intent in (
        (None, DEFINITION, "definition"),
        (_ROLE, ROLE, "role"),
        (_MECHANISM, MECHANISM, "mechanism"),
        (_DETERMINED_BY, DETERMINED_BY, "determined_by"),
        (_INFLUENCES_OTHER, INFLUENCE, "influence"),
        (_INFLUENCED, INFLUENCED, "influenced"),
    ):
        matched = _is_definition(rest) if pattern is None else pattern.search(rest)
        if matched:
            qs, tids = picker.pick(bank, k, x=s)
            return [(intent, qs, tids)]
    return []


def _is_definition(rest: str) -> bool:
    """"…를 측정하는 진공 게이지다": says what the subject is. A copula after a causal or
    conditional clause ("…작동하므로 … 수준이다") describes a property, not the concept."""
    if re.search(r"므로|때문|으면|하면|지만|하여|해서", rest):
        return False
    return bool(_DEF_END.search(rest)) or (bool(_COPULA_END.search(rest)) and "," not in rest)


def specific_subject(subject: str, doc: Document, vocabulary: Sequence[str]) -> bool:
    """A subject a reader understands without the previous sentence or the title.

    "증상이 반복되면", "주요 원인은", "대신 pump 상태가", "반면 ±1% of reading 사양은" are not:
    no connective or demonstrative, a KB term/keyword or Latin term, and a generic head
    noun ("원인", "조건") only with a qualifier that names such a term.
    """
    words = subject.split()
    if not words or CONNECTIVE.match(subject) or words[0] in _GENERIC_MODIFIERS:
        return False
    low = subject.casefold()
    named = bool(re.search(r"[A-Za-z]{2,}|[A-Za-z]\d", subject)) or any(k.casefold() in low for k in doc.keywords) or any(t in low for t in vocabulary)
    if not named:
        return False
    head = re.sub(r"^.*의", "", words[-1])
    if head in _GENERIC_HEADS:
        qualifier = " ".join([*words[:-1], words[-1][: len(words[-1]) - len(head)]]).casefold()
        return bool(re.search(r"[A-Za-z]{2,}", qualifier)) or any(t in qualifier for t in vocabulary if len(t) >= 2)
    return True


# ------------------------------------------------------------------ fact builders

@functools.lru_cache(maxsize=1)
def _load_kiwi():  # noqa: ANN202 - kiwipiepy is imported lazily
    """The Kiwi model (≈2 s to load, read-only afterwards), loaded once per process."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    list(kiwi.tokenize(["모델을 미리 불러온다."]))  # the first call loads the rest lazily
    return kiwi


class KiwiTagger:
    """Kiwi, loaded once per build; only the head of each sentence is tagged.

    The subject and a short condition sit in the first few words, and Kiwi's time grows
    faster than linearly with length (1145 sentences: 1.9 s at 80 chars, 0.6 s at 45), so
    each sentence is cut 14 characters after its first possible subject particle, and
    sentences whose first particle comes after 32 characters (no short subject) are skipped.
    """

    _FIRST_PARTICLE = re.compile(r"[은는이가]\s")

    def __init__(self) -> None:
        self._kiwi = _load_kiwi()

    def head(self, sentence: str, limit: int = 50) -> str:
        match = self._FIRST_PARTICLE.search(sentence)
        if not match or match.start() > 32:
            return ""
        return sentence[: min(match.end() + 14, limit)]

    def tag(self, texts: list[str]) -> list[list]:
        """Tokens of each text ([] for empty texts, which are not sent to Kiwi)."""
        todo = [i for i, t in enumerate(texts) if t]
        out: list[list] = [[] for _ in texts]
        for i, toks in zip(todo, self._kiwi.tokenize([texts[i] for i in todo])):
            out[i] = list(toks)
        return out


def document_facts(kb: KnowledgeBase, tagger: KiwiTagger, rng: random.Random, *, paraphrases: int, max_answer_chars: int = ANSWER_MAX_CHARS) -> list[Fact]:
    """Title facts and sentence facts of every document, in document order."""
    picker = TemplatePicker(rng)
    docs = kb.documents
    sentences = [split_sentences(d.text) for d in docs]
    flat = [(di, si, s) for di, ss in enumerate(sentences) for si, s in enumerate(ss[:4])]
    titled = [di for di, d in enumerate(docs) if has_real_title(d)]
    # Only titles with a possible particle need tags (statement titles); noun phrases do not.
    tagged = tagger.tag([tagger.head(s) for _, _, s in flat] + [docs[di].title.strip().rstrip("?.")[:50] if tagger.head(docs[di].title + " ") else "" for di in titled])
    title_tokens = dict(zip(titled, tagged[len(flat) :]))
    tagged = tagged[: len(flat)]
    parses: dict[int, list[tuple[int, SentenceParse]]] = {}
    vocabulary = [t.casefold() for t in kb.domain_terms() if t.strip()]
    for (di, si, s), toks in zip(flat, tagged):
        if needs_previous(s) or _ANAPHORA.search(s[:20]):
            continue
        parse = parse_sentence(toks, s) if toks else None
        if parse and specific_subject(parse.subject, docs[di], vocabulary):
            parses.setdefault(di, []).append((si, parse))
    facts: list[Fact] = []
    for di, doc in enumerate(docs):
        ss = sentences[di]
        if not ss:
            continue
        title_subjects: set[str] = set()
        made = title_questions(doc.title, title_tokens.get(di, ()), picker, paraphrases) if has_real_title(doc) else None
        if made is not None:
            intent, wordings, tids, terms = made
            # A title sums up its document, so a short document answers it whole: cut after
            # a few sentences, "TMA 화재 시 소화 방법은?" kept what not to use and lost the
            # method (issue 21, 100 rows read). A long document answers from the start with
            # as many whole sentences as fit (a two-part title needs both parts).
            answer = whole_document(doc, ss)
            if answer is None:
                limit = max_answer_chars + 60 if intent == "difference" or "와 " in doc.title or "과 " in doc.title else max_answer_chars - 30
                answer = trim_answer(ss, limit)
                if len(answer) < ANSWER_MIN_CHARS and len(ss) > 1 and answer == ss[0]:
                    answer = " ".join(ss[:2])  # "…증기압에 따라 선택한다." alone names no method
            facts.append(Fact(f"{doc.id}#t", "kb", intent, wordings, [(answer, doc.id)], [doc.id], terms, subject=doc.title, templates=tids))
            title_subjects = {x.casefold() for x in terms}
        facts.extend(asked_facts(doc, ss, max_answer_chars, tagger))
        for si, parse in parses.get(di, []):
            if _ANAPHORA.search(parse.rest):
                continue  # "이 시간이 가려지지만": needs the previous sentence to be understood
            subject = _PAREN.sub("", parse.subject).strip() or parse.subject
            for intent, wordings, tids in sentence_questions(parse, picker, paraphrases):
                if intent == "definition" and subject.casefold() in title_subjects:
                    continue  # the title fact already asks what it is
                # A short document answers whole here too: the window around the sentence
                # answered "웨이퍼가 잘못 놓이면 어떤 문제가 생기나요?" with what the sensor does.
                answer = whole_document(doc, ss) or answer_window(ss, si, max_chars=max_answer_chars)
                facts.append(Fact(f"{doc.id}#s{si}", "kb", intent, wordings, [(answer, doc.id)], [doc.id], [subject], subject=subject, templates=tids))
    return facts


#: A document up to this long answers each of its written questions whole. The shipped KB's
#: documents make one point each (222 characters on average, 398 at most); a longer document
#: (an imported manual page) holds several, and its questions get the window around the
#: sentence they ask about.
WHOLE_DOCUMENT_CHARS = 450


def whole_document(doc: Document, sentences: Sequence[str]) -> str | None:
    """The document's sentences as one answer when it is short enough to answer whole, else None
    (the caller cuts a window). One rule for written, title, sentence and combination questions."""
    return " ".join(sentences) if len(doc.text) <= WHOLE_DOCUMENT_CHARS else None


def asked_facts(doc: Document, sentences: Sequence[str], max_answer_chars: int, tagger: KiwiTagger) -> list[Fact]:
    """Facts for the questions people wrote into the document (`Document.questions`).

    Each question was written to be answered by its document, so a short document answers
    it whole. Picking a window inside it failed one `#q` row in five when 100 rows were read
    (issue 21): the sentence sharing the most character bigrams with the question is often
    not the one it asks about ("서셉터가 뭐야? 재질은?" shares nothing with "Susceptor는 …
    AlN …" and got the temperature-uniformity sentence; a definition before the best sentence
    was cut off). A long document's questions get the window around the sentence they share
    most character bigrams with ("펌핑이" still matches "펌핑"), started earlier when its first
    sentence leans on an earlier one ("이 주파수가…"). Questions answered by the same text share
    one fact, so a document's wordings stay together in the split.
    """
    whole = whole_document(doc, sentences)
    if whole is not None:
        return [_asked_fact(doc, 0, list(doc.questions), whole)] if doc.questions else []
    by_sentence: dict[int, list[str]] = {}
    for question in doc.questions:
        si = _best_sentence(question, sentences)
        while si > 0 and dangling_reference(answer_window(sentences, si, max_chars=max_answer_chars), tagger):
            si -= 1
        by_sentence.setdefault(si, []).append(question)
    return [
        _asked_fact(doc, si, wordings, answer_window(sentences, si, max_chars=max_answer_chars))
        for si, wordings in sorted(by_sentence.items())
    ]


def _asked_fact(doc: Document, si: int, wordings: list[str], answer: str) -> Fact:
    return Fact(
        f"{doc.id}#q{si}", "kb", "asked", wordings, [(answer, doc.id)], [doc.id], [],
        subject=doc.title, templates=[ASKED] * len(wordings),
    )


def _bigrams(text: str) -> set[str]:
    folded = re.sub(r"\s+", "", text.casefold())
    return {folded[i : i + 2] for i in range(len(folded) - 1)}


def _best_sentence(question: str, sentences: Sequence[str]) -> int:
    """Index of the sentence sharing the most character bigrams with `question` (first on ties)."""
    wanted = _bigrams(question)
    scores = [len(wanted & _bigrams(s)) for s in sentences]
    return max(range(len(sentences)), key=lambda i: (scores[i], -i)) if sentences else 0


class SynonymIndex:
    """`kb.synonyms_of` precomputed and case-folded (it scans every group on each call)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self._kb = kb
        self._cache: dict[str, list[str]] = {}

    def spellings(self, term: str) -> list[str]:
        if term not in self._cache:
            self._cache[term] = sorted({s.casefold() for s in self._kb.synonyms_of(term)})
        return self._cache[term]

    def occurs(self, text_cf: str, term: str) -> bool:
        """True when `term` or one of its synonyms occurs in the case-folded text."""
        return any(s in text_cf for s in self.spellings(term))


#: Keywords on more than this share of documents ("ALD", "온도", "웨이퍼") relate to
#: everything; a combination question about them asks nothing in particular.
COMBO_MAX_KEYWORD_SHARE = 0.08


#: Terms every document relates to; "ALD와 라디칼의 관계" asks nothing in particular.
_UMBRELLA_TERMS = {"ald", "cvd", "온도", "압력", "웨이퍼", "flow", "챔버", "사이클", "valve", "밸브", "가스", "막", "공정", "장비", "막 두께", "precursor"}


def _subject_end(sentence: str) -> int:
    """End of the sentence's subject part: its first topic/subject particle, else a third."""
    m = re.search(r"[가-힣A-Za-z0-9)](은|는|이|가)\s", sentence)
    return m.end() if m and m.end() <= 40 else len(sentence) // 3


def combo_facts(kb: KnowledgeBase, rng: random.Random, *, paraphrases: int, max_facts: int, max_answer_chars: int = ANSWER_MAX_CHARS) -> list[Fact]:
    """Two keywords that one sentence relates, answered by that sentence's window.

    Issue 11: "X에서 Y를 함께 봐야 하는 이유는?" over keywords that merely co-occurred in a
    document produced "온도에서 인터락을 함께 봐야 하는 이유는?"; now both keywords must be
    specific (rare across documents) and named in one self-contained sentence. Issue 21 (5 of
    the 6 serious rows in 100 read were combinations): the document must also be about one of
    them (named in its title) — "H2O와 O3의 관계" was answered from a La2O3 document, "SiO2와
    TiN" from an NF3-clean example list — and a short document answers whole, so the answer
    says what the pair is, not one sentence cut from the middle.
    """
    syn = SynonymIndex(kb)
    doc_freq = Counter(k.casefold() for d in kb.documents for k in set(d.keywords))
    limit = max(3, COMBO_MAX_KEYWORD_SHARE * len(kb.documents))
    pairs: dict[tuple[str, str], tuple[Document, list[str], int]] = {}
    for doc in kb.documents:
        ss = split_sentences(doc.text)
        folded = [s.casefold() for s in ss]
        title = doc.title.casefold()
        kws = sorted({k for k in doc.keywords if k.strip() and doc_freq[k.casefold()] <= limit and k.casefold() not in _UMBRELLA_TERMS})
        for i, a in enumerate(kws):
            for b in kws[i + 1 :]:
                if a.casefold() == b.casefold() or set(syn.spellings(a)) & set(syn.spellings(b)) or a.casefold() in b.casefold() or b.casefold() in a.casefold():
                    continue
                if not (syn.occurs(title, a) or syn.occurs(title, b)):
                    continue
                for j, low in enumerate(folded):
                    if needs_previous(ss[j]) or _ANAPHORA.search(ss[j][:20]):
                        continue
                    head = low[: _subject_end(low)]
                    related = syn.occurs(head, a) or syn.occurs(head, b)  # one of them is what the sentence is about
                    if related and syn.occurs(low, a) and syn.occurs(low, b) and (a, b) not in pairs:
                        pairs[(a, b)] = (doc, ss, j)
                        break
    keys = sorted(pairs)
    rng.shuffle(keys)
    picker = TemplatePicker(rng)
    facts: list[Fact] = []
    for a, b in keys[:max_facts]:
        doc, ss, j = pairs[(a, b)]
        answer = whole_document(doc, ss) or answer_window(ss, j, max_chars=max_answer_chars)
        qs, tids = picker.pick(COMBO, min(paraphrases, 2), a=a, b=b)
        facts.append(Fact(f"combo:{a}+{b}", "combo", "combo", qs, [(answer, doc.id)], [doc.id], [a, b], subject=f"{a}, {b}", templates=tids))
    return facts


def difference_facts(kb: KnowledgeBase, definitions: Iterable[Fact], rng: random.Random, *, paraphrases: int, max_facts: int) -> list[Fact]:
    """"X와 Y의 차이는?" from one definition of each, only for pairs the KB itself compares."""
    vocabulary = {t.casefold() for t in kb.domain_terms()}
    by_term: dict[str, Fact] = {}
    for fact in definitions:
        # Only KB terms: "주요 원인은 …이다" is a definition sentence but no comparable concept.
        if fact.intent == "definition" and fact.subject.casefold() in vocabulary and fact.subject not in by_term and fact.fact_id.split("#")[-1].startswith("s"):
            by_term[fact.subject] = fact
    terms = sorted(by_term)
    subjects_by_doc: dict[str, set[str]] = {}
    for term, fact in by_term.items():
        subjects_by_doc.setdefault(fact.doc_ids[0], set()).add(term.casefold())
    related = _related_terms(kb, terms, subjects_by_doc)
    pairs = [(a, b) for i, a in enumerate(terms) for b in terms[i + 1 :] if frozenset((a.casefold(), b.casefold())) in related]
    rng.shuffle(pairs)
    picker = TemplatePicker(rng)
    facts: list[Fact] = []
    for a, b in pairs[:max_facts]:
        fa, fb = by_term[a], by_term[b]
        if set(fa.doc_ids) & set(fb.doc_ids):
            continue
        first_a = split_sentences(fa.answer_parts[0][0])[0]
        first_b = split_sentences(fb.answer_parts[0][0])[0]
        if not first_a.startswith(a) or not first_b.startswith(b):
            continue  # each part must define its own term
        parts = [(first_a, fa.doc_ids[0]), (f"반면 {first_b}", fb.doc_ids[0])]
        qs, tids = picker.pick(DIFFERENCE, paraphrases, a=a, b=b)
        facts.append(Fact(f"diff:{a}+{b}", "combo", "difference", qs, parts, [fa.doc_ids[0], fb.doc_ids[0]], [a, b], subject=f"{a}, {b}", templates=tids))
    return facts


_CONTRAST = re.compile(r"차이|반면|달리|비해|구분|혼동|대신|비교|다르")


def _compared(term: str, sentence_cf: str) -> bool:
    """"VG13과 달리", "CVD보다", "CVD에 비해", "ALD와 비교하면": the sentence compares against `term`."""
    return re.search(re.escape(term) + r"\s*(?:와|과|에|)\s*(?:달리|비교|다르|다른|비해|보다|대비)", sentence_cf) is not None


def _related_terms(kb: KnowledgeBase, terms: Sequence[str], subjects_by_doc: dict[str, set[str]]) -> set[frozenset[str]]:
    """Term pairs the KB itself compares: a sentence that names both with one of them as the
    explicit comparison ("A는 B와 달리..."), or the document defining A compares it to B."""
    related: set[frozenset[str]] = set()
    folded = sorted({t.casefold() for t in terms})
    for doc in kb.documents:
        own = subjects_by_doc.get(doc.id, set())
        for sentence in split_sentences(doc.text):
            if not _CONTRAST.search(sentence):
                continue
            low = sentence.casefold()
            present = [t for t in folded if t in low]
            for a in present:
                if not _compared(a, low):
                    continue
                for b in sorted(set(present) | own):
                    # b must be what the sentence is about: its subject, or the document's own term
                    about_b = b in own or re.search(re.escape(b) + r"(?:은|는|이|가)\s", low) is not None
                    if a not in b and b not in a and about_b:
                        related.add(frozenset((a, b)))
    return related
