"""Natural Korean questions whose answer is the document they were generated from.

The legacy generator asked "{keyword}에 대해 알려줘" and answered with any sentence that
shared the keyword, so half its answers did not answer the question. Here every question is
derived from what a document actually says — its title, or the subject and predicate of
one of its sentences (found with Kiwi's part-of-speech tags) — and the answer is that
document's text, so the answer is right by construction. Particles come from `josa`.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aldlab.data.facts import Fact
from aldlab.data.korean import josa
from aldlab.kb.schema import Document, KnowledgeBase

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_PAREN = re.compile(r"\s*\([^()]*\)")
# Tags Kiwi gives to the pieces of a plain noun phrase ("Carrier gas MFC의 유량").
_NOUNISH = {"NNG", "NNP", "NNB", "NR", "SL", "SN", "SH", "SO", "SW", "SS", "SSO", "SSC", "XSN", "XPN", "JKG", "JC", "MM", "XR", "W_SERIAL", "SP"}
# Tags allowed between a subject and the 면/으면 of a short condition ("너무 높아지면").
_CONDITION_TAGS = {"VV", "VA", "VX", "EP", "XSV", "XSA", "MAG", "EC", "NNG", "SN", "SL", "NNB", "JKB", "JKO", "VCN", "XSN", "MM", "ETN"}


def split_sentences(text: str) -> list[str]:
    """Sentences of a document (Korean technical prose ends sentences with '.')."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def trim_answer(sentences: Sequence[str], max_chars: int) -> str:
    """Whole sentences up to `max_chars` (always at least the first one)."""
    out: list[str] = []
    for sentence in sentences:
        if out and len(" ".join([*out, sentence])) > max_chars:
            break
        out.append(sentence)
    return " ".join(out)


def has_real_title(doc: Document) -> bool:
    """Legacy documents get their first clause as title; those titles are no topic."""
    head = doc.title.rstrip("…").strip()
    return bool(head) and not doc.text.strip().startswith(head) and len(head) <= 60


# ---------------------------------------------------------------- title questions

_WHAT_HEADS = {
    "이유", "원인", "원리", "방식", "방법", "기준", "조건", "범위", "특징", "단계", "종류", "의미", "목적",
    "한계", "증상", "영향", "관계", "장점", "단점", "순서", "절차", "구성", "요소", "효과", "위험", "대책", "필요성",
    "차이", "차이점", "구조", "역할", "기능", "정의", "개념", "특성",
}
_DIFFERENCE = re.compile(r"^(?P<a>[^,]+?)(?:와|과|vs\.?|VS|대비) (?P<b>[^,]+?)(?:의 (?:[^,]* )?| )(?:차이|차이점|구분|비교)$")
_ADJECTIVAL_NOUNS = {"적합", "필요", "중요", "유리", "불리", "가능", "바람직", "부적합", "불가능", "유용"}
_WHEN = re.compile(r"^(?P<when>.+ 때)의 (?P<head>.+)$")
_OF_HEAD = re.compile(r"^(?P<x>.+?)의 (?P<head>[^ ]+)$")


def title_questions(title: str, tokens: Sequence = ()) -> tuple[str, list[str], list[str]]:
    """(intent, question wordings, particle-bearing terms) for a document title.

    `tokens` (Kiwi) tell a statement title ("APC Valve는 … 조절") from a noun-phrase title.
    """
    t = title.strip().rstrip("?.").strip()
    diff = _DIFFERENCE.match(t)
    if diff:
        a, b = diff.group("a").strip(), diff.group("b").strip()
        return "difference", [
            f"{josa(a, '와/과')} {b}의 차이는 뭐야?",
            f"{josa(a, '와/과')} {josa(b, '은/는')} 어떻게 다른가요?",
            f"{josa(a, '와/과')} {b}의 차이를 설명해 주세요.",
            f"{josa(a, '와/과')} {josa(b, '을/를')} 어떻게 구분하나요?",
        ], [a, b]
    when = _WHEN.match(t)
    if when:
        w, head = when.group("when"), when.group("head")
        qs = [f"{w} 어떤 영향이 있나요?", f"{w} 어떻게 되나요?", f"{w} 무슨 일이 생겨?"] if head == "영향" else [
            f"{w} {josa(head, '은/는')} 어떻게 되나요?", f"{w} {head}에 대해 알려줘."]
        return "condition", [*qs, f"{t}에 대해 설명해 주세요."], [head]
    of = _OF_HEAD.match(t)
    if of and of.group("head") in {"정의", "개념", "의미", "뜻"}:
        x = _PAREN.sub("", of.group("x"))
        return "definition", [f"{josa(x, '이/가')} 뭐야?", f"{josa(x, '은/는')} 무엇인가요?", f"{josa(x, '이/가')} 무슨 뜻인지 설명해 줄래?", f"{josa(x, '이란/란')} 무엇을 말하나요?"], [x]
    if of and of.group("head") in {"역할", "기능", "목적"}:
        x = _PAREN.sub("", of.group("x"))
        return "role", [f"{josa(x, '은/는')} 어떤 역할을 하나요?", f"{josa(x, '은/는')} 무슨 일을 해?", f"{x}의 {josa(of.group('head'), '이/가')} 뭐야?", f"{x}의 {of.group('head')}에 대해 알려줘."], [x, of.group("head")]
    topic = parse_sentence(tokens, t) if tokens else None
    if topic is not None:
        x = _PAREN.sub("", topic.subject).strip() or topic.subject
        return "title", [f"{x}에 대해 설명해 주세요.", f"{x}에 대해 알려줘.", f"{x}에 관해 알아야 할 점은?"], [x]
    last = t.split()[-1] if t.split() else t
    if last in _ADJECTIVAL_NOUNS and tokens and any(tok.tag in ("JKS", "JX", "JKB") for tok in tokens):
        stem = t
        return "title", [f"왜 {stem}한가요?", f"{stem}한 이유가 뭐야?", f"{stem}한 이유를 설명해 주세요."], []
    head = t.split()[-1] if t.split() else t
    bare_head = re.sub(r"^.*의", "", head)
    if head in _WHAT_HEADS or bare_head in _WHAT_HEADS:
        return "title", [f"{josa(t, '은/는')} 무엇인가요?", f"{josa(t, '이/가')} 뭐야?", f"{josa(t, '을/를')} 설명해 주세요.", f"{josa(t, '이/가')} 궁금해요."], [t]
    return "title", [f"{t}에 대해 설명해 주세요.", f"{t}에 대해 알려줘.", f"{t}에 관해 설명해 줄래?"], []


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
_COPULA_END = re.compile(r"(?<!높)(?<!줄)(?<!붙)(?<!보)(?<!기울)(?<!속)(?<!녹)이다\.?$")
_ANAPHORA = re.compile(r"(^|\s)(이|그|이런|그런|이러한|그러한|해당|위의) [가-힣A-Za-z]")
_INFLUENCES_OTHER = re.compile(r"에\s*(큰\s*|직접\s*|직접적인\s*|많은\s*|상당한\s*)?영향을\s*(준다|미친다|주며|주고|주어|미쳐)")
_INFLUENCED = re.compile(r"영향을\s*(받는다|받으며|받아|받고)")
_ROLE = re.compile(r"역할|기능|담당|제어한다|조절한다|측정한다|유지한다|방지한다|제공한다|막는다|차단한다|공급한다|제거한다|보호한다|감지한다")
_MECHANISM = re.compile(r"원리|이용해|이용하여|이용한다|반복하|순차적으로|을 통해|를 통해|방식으로")
_DETERMINED_BY = re.compile(r"(결정된다|좌우된다|정해진다)\.?$")
_INFERENCE = re.compile(r"(판단할 수|의심할 수|알 수 있|추정할 수|확인할 수|판단한다|의심한다)")
_DIAGNOSE = re.compile(r"의심|원인")
_ACTION = re.compile(r"점검|확인|교체|조치|조정|낮추|높이|늘리|줄이|세정|보정")
_TOO_MUCH = {"높으면", "높아지면", "크면", "커지면", "많으면", "많아지면", "길면", "길어지면", "빠르면", "빨라지면"}


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
    for j, tok in enumerate(tokens[:7]):
        if tok.tag == "EC" and tok.form in ("면", "으면"):
            text = sentence[start : tok.start + tok.len].strip()
            return text if 0 < len(text) <= 24 and "," not in text else None
        if tok.tag not in _CONDITION_TAGS:
            return None
    return None


def sentence_questions(parse: SentenceParse) -> list[tuple[str, list[str]]]:
    """(intent, wordings) the sentence answers; empty when it answers no clear question."""
    s = _PAREN.sub("", parse.subject).strip() or parse.subject
    out: list[tuple[str, list[str]]] = []
    if parse.condition and parse.particle in ("이", "가"):
        c = parse.condition
        if _INFERENCE.search(parse.rest):
            out.append(("troubleshooting", [f"{josa(s, '이/가')} {c} 무엇을 의심해야 하나요?", f"{josa(s, '이/가')} {c} 무엇을 알 수 있나요?", f"{josa(s, '이/가')} {c} 어떤 점을 확인해야 해?"]))
            return out
        qs = [f"{josa(s, '이/가')} {c} 어떻게 되나요?", f"{josa(s, '이/가')} {c} 어떤 문제가 생기나요?", f"{josa(s, '이/가')} {c} 무슨 일이 일어나?"]
        if c in _TOO_MUCH:
            qs.insert(0, f"{josa(s, '이/가')} 너무 {c} 어떻게 되나요?")
        if _DIAGNOSE.search(parse.rest):
            qs.append(f"{josa(s, '이/가')} {c} 어떤 원인을 의심해야 하나요?")
        if _ACTION.search(parse.rest):
            qs.append(f"{josa(s, '이/가')} {c} 어떻게 조치해야 하나요?")
        out.append(("condition", qs))
        return out
    if parse.particle not in ("은", "는"):
        return out
    if _DEF_END.search(parse.rest) or _COPULA_END.search(parse.rest):
        out.append(("definition", [f"{josa(s, '이/가')} 뭐야?", f"{josa(s, '은/는')} 무엇인가요?", f"{josa(s, '이/가')} 무엇인지 설명해 줄래?", f"{josa(s, '이란/란')} 뭔가요?"]))
    elif _ROLE.search(parse.rest):
        qs = [f"{josa(s, '은/는')} 어떤 역할을 하나요?", f"{josa(s, '은/는')} 무슨 일을 해?", f"{s}의 기능이 뭐야?"]
        if re.search(r"측정|제어|조절|작동|동작", parse.rest):
            qs.append(f"{josa(s, '은/는')} 어떻게 동작해?")
        out.append(("role", qs))
    elif _MECHANISM.search(parse.rest):
        out.append(("mechanism", [f"{josa(s, '은/는')} 어떻게 동작해?", f"{s}의 동작 원리를 설명해 줘.", f"{josa(s, '은/는')} 어떤 방식으로 이루어지나요?"]))
    elif _DETERMINED_BY.search(parse.rest):
        out.append(("determined_by", [f"{josa(s, '은/는')} 무엇에 의해 결정되나요?", f"{josa(s, '은/는')} 무엇으로 정해지나요?", f"{josa(s, '을/를')} 좌우하는 요인은 뭐야?"]))
    elif _INFLUENCES_OTHER.search(parse.rest) or re.search(r"좌우한다|결정한다", parse.rest):
        out.append(("influence", [f"{josa(s, '은/는')} 어떤 영향을 주나요?", f"{josa(s, '이/가')} 중요한 이유는 뭐야?", f"{josa(s, '은/는')} 무엇을 좌우하나요?"]))
    elif _INFLUENCED.search(parse.rest):
        out.append(("influenced", [f"{josa(s, '은/는')} 무엇의 영향을 받나요?", f"{s}에 영향을 주는 요인은 뭐야?", f"{josa(s, '을/를')} 바꾸는 요인은 무엇인가요?"]))
    return out


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


def _pick(rng: random.Random, wordings: list[str], k: int) -> list[str]:
    unique = list(dict.fromkeys(wordings))
    return unique if len(unique) <= k else rng.sample(unique, k)


def document_facts(
    kb: KnowledgeBase, tagger: KiwiTagger, rng: random.Random, *, paraphrases: int, max_answer_chars: int
) -> list[Fact]:
    """Title facts and sentence facts of every document, in document order."""
    docs = kb.documents
    sentences = [split_sentences(d.text) for d in docs]
    flat = [(di, si, s) for di, ss in enumerate(sentences) for si, s in enumerate(ss[:3])]
    titled = [di for di, d in enumerate(docs) if has_real_title(d)]
    # Only titles with a possible particle need tags (statement titles); noun phrases do not.
    tagged = tagger.tag([tagger.head(s) for _, _, s in flat] + [docs[di].title.strip().rstrip("?.")[:50] if tagger.head(docs[di].title) else "" for di in titled])
    title_tokens = dict(zip(titled, tagged[len(flat) :]))
    tagged = tagged[: len(flat)]
    parses: dict[int, list[tuple[int, SentenceParse]]] = {}
    vocabulary = [t.casefold() for t in kb.domain_terms() if t.strip()]
    for (di, si, s), toks in zip(flat, tagged):
        parse = parse_sentence(toks, s) if toks else None
        if parse and _specific(parse.subject, docs[di], vocabulary):
            parses.setdefault(di, []).append((si, parse))
    facts: list[Fact] = []
    for di, doc in enumerate(docs):
        ss = sentences[di]
        if not ss:
            continue
        whole = trim_answer(ss, max_answer_chars)
        if has_real_title(doc):
            intent, wordings, terms = title_questions(doc.title, title_tokens.get(di, ()))
            facts.append(Fact(f"{doc.id}#t", "kb", intent, _pick(rng, wordings, paraphrases), [(whole, doc.id)], [doc.id], terms, subject=doc.title))
        for si, parse in parses.get(di, []):
            if _ANAPHORA.search(parse.rest):
                continue  # "이 시간이 가려지지만": needs the previous sentence to be understood
            for intent, wordings in sentence_questions(parse):
                answer = _sentence_answer(ss, si, parse.subject, max_answer_chars)
                subject = _PAREN.sub("", parse.subject).strip() or parse.subject
                facts.append(Fact(f"{doc.id}#s{si}", "kb", intent, _pick(rng, wordings, paraphrases), [(answer, doc.id)], [doc.id], [subject], subject=subject))
        if not has_real_title(doc) and not parses.get(di):
            subject = _fallback_subject(doc, kb)
            if subject:
                wordings = [f"{subject}에 대해 알려줘.", f"{subject}에 대해 설명해 주세요.", f"{subject}에 관해 알아야 할 점은?"]
                facts.append(Fact(f"{doc.id}#k", "kb", "about", _pick(rng, wordings, paraphrases), [(whole, doc.id)], [doc.id], [subject], subject=subject))
    return facts


def _specific(subject: str, doc: Document, vocabulary: list[str]) -> bool:
    """A subject a reader understands without the previous sentence ("증상이 반복되면" is not).

    It must name a KB term or keyword, contain a Latin term, or be a phrase of 2+ words.
    """
    low = subject.casefold()
    if re.search(r"[A-Za-z]", subject) or len(subject.split()) >= 2:
        return True
    return any(k.casefold() in low for k in doc.keywords) or any(t in low for t in vocabulary)


def _sentence_answer(sentences: list[str], index: int, subject: str, max_chars: int) -> str:
    """The anchor sentence plus the next one when it continues the same point."""
    picked = [sentences[index]]
    if index + 1 < len(sentences):
        nxt = sentences[index + 1]
        continues = _CONNECTIVE.match(nxt)
        if continues or subject.split()[0] in nxt:
            picked.append(nxt)
    return trim_answer(picked, max_chars)


_CONNECTIVE = re.compile(r"^(이때|이 때|따라서|그래서|그러면|이 경우|이를|그 결과|즉|반면|특히|또한|이 차이|이 때문에|이처럼|그러므로|하지만|다만|이런|이 |그 )")


def _with_antecedent(sentences: list[str], index: int) -> str:
    """A sentence that starts with 그러면/이때... needs the one before it to make sense."""
    if index > 0 and _CONNECTIVE.match(sentences[index]):
        return f"{sentences[index - 1]} {sentences[index]}"
    return sentences[index]


def _fallback_subject(doc: Document, kb: KnowledgeBase) -> str:
    """A keyword the document actually mentions (legacy docs without a parsable subject)."""
    low = doc.text.casefold()
    for kw in doc.keywords:
        if kw.casefold() in low:
            return kw
    return ""


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


def combo_facts(kb: KnowledgeBase, rng: random.Random, *, paraphrases: int, max_facts: int, max_answer_chars: int) -> list[Fact]:
    """Keyword-combination facts: two keywords answered by the sentences that mention both."""
    syn = SynonymIndex(kb)
    pairs: dict[tuple[str, str], list[tuple[Document, list[str]]]] = {}
    for doc in kb.documents:
        ss = split_sentences(doc.text)
        folded = [s.casefold() for s in ss]
        kws = sorted({k for k in doc.keywords if k.strip()})
        for i, a in enumerate(kws):
            for b in kws[i + 1 :]:
                if a.casefold() == b.casefold() or set(syn.spellings(a)) & set(syn.spellings(b)):
                    continue
                both = [_with_antecedent(ss, j) for j, low in enumerate(folded) if syn.occurs(low, a) and syn.occurs(low, b)]
                if both:
                    pairs.setdefault((a, b), []).append((doc, both))
    keys = sorted(pairs)
    rng.shuffle(keys)
    facts: list[Fact] = []
    for a, b in keys[:max_facts]:
        sources = sorted(pairs[(a, b)], key=lambda item: item[0].id)[:2]
        per_doc = max_answer_chars // len(sources)
        parts = [(trim_answer(both, max(per_doc, 80)), doc.id) for doc, both in sources]
        wordings = [
            f"{josa(a, '와/과')} {josa(b, '은/는')} 어떤 관계가 있나요?",
            f"{josa(a, '와/과')} {b}의 관계를 설명해 줘.",
            f"{a}에서 {josa(b, '을/를')} 함께 봐야 하는 이유는?",
            f"{josa(a, '와/과')} {josa(b, '을/를')} 같이 고려할 때 알아야 할 점은?",
        ]
        facts.append(Fact(f"combo:{a}+{b}", "combo", "combo", _pick(rng, wordings, paraphrases), parts, [d.id for d, _ in sources], [a, b], subject=f"{a}, {b}"))
    return facts


def difference_facts(
    kb: KnowledgeBase, definitions: Iterable[Fact], rng: random.Random, *, paraphrases: int, max_facts: int
) -> list[Fact]:
    """"X와 Y의 차이는?" from one definition document of each (related keywords only)."""
    vocabulary = {t.casefold() for t in kb.domain_terms()}
    by_term: dict[str, Fact] = {}
    for fact in definitions:
        # Only KB terms: "주요 원인은 …이다" is a definition sentence but no comparable concept.
        if fact.intent == "definition" and fact.subject.casefold() in vocabulary and fact.subject not in by_term:
            by_term[fact.subject] = fact
    terms = sorted(by_term)
    subjects_by_doc: dict[str, set[str]] = {}
    for term, fact in by_term.items():
        subjects_by_doc.setdefault(fact.doc_ids[0], set()).add(term.casefold())
    related = _related_terms(kb, terms, subjects_by_doc)
    pairs = [(a, b) for i, a in enumerate(terms) for b in terms[i + 1 :] if frozenset((a.casefold(), b.casefold())) in related]
    rng.shuffle(pairs)
    facts: list[Fact] = []
    for a, b in pairs[:max_facts]:
        fa, fb = by_term[a], by_term[b]
        if set(fa.doc_ids) & set(fb.doc_ids):
            continue
        first_a = split_sentences(fa.answer_parts[0][0])[0]
        first_b = split_sentences(fb.answer_parts[0][0])[0]
        parts = [(first_a, fa.doc_ids[0]), (f"반면 {first_b}", fb.doc_ids[0])]
        wordings = [
            f"{josa(a, '와/과')} {b}의 차이는?",
            f"{josa(a, '와/과')} {b}의 차이가 뭐야?",
            f"{josa(a, '와/과')} {josa(b, '은/는')} 어떻게 다른가요?",
        ]
        facts.append(Fact(f"diff:{a}+{b}", "combo", "difference", _pick(rng, wordings, paraphrases), parts, [fa.doc_ids[0], fb.doc_ids[0]], [a, b], subject=f"{a}, {b}"))
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
