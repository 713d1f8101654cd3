"""Checkable claims inside KB sentences: quantities, orderings and what a term *is*.

The audit and the importer compare these claims between documents to find candidate
contradictions for a person to resolve; the dataset builder checks feedback targets
against the KB's definitions the same way (`DefinitionIndex`). The review of issue 11 found three shapes in the
shipped KB and the legacy import:

- the same subject with numbers on different scales ("Carrier gas … 수십 sccm 이하" vs
  "Carrier gas … 50~300 sccm"),
- the same chain in a different order ("Canister보다 밸브, 밸브보다 배관" vs
  "Canister보다 배관, 배관보다 Valve"),
- one term defined as two kinds of thing (VG12 "진공 게이지" vs VG12 "게이트 밸브 개폐 신호").

Extraction is deliberately shallow (regular expressions over Korean text with the KB's
vocabulary as the dictionary): it proposes candidates, a person decides.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aldlab.kb.loaders import merge_synonym_groups
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.text import split_sentences

_CLAUSE_END = re.compile(r",\s+|;\s+")

#: Vocabulary terms that name a measured dimension or are too general to be a subject: two
#: sentences that share only "막 두께" or "GPC" talk about different films, not one value.
GENERIC_TERMS = {
    "ald", "온도", "압력", "flow", "sccm", "torr", "사이클", "챔버", "웨이퍼", "표면", "valve", "precursor",
    "막 두께", "gpc", "purge 시간", "pulse 시간", "웨이퍼 온도", "증기압", "균일도", "유량 오차",
}

# ---------------------------------------------------------------- vocabulary


class Vocabulary:
    """KB terms (keywords and synonyms) mapped to one canonical spelling, and a matcher."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.canonical: dict[str, str] = {}
        for keyword in kb.keywords:
            for spelling in kb.synonyms_of(keyword):
                self.canonical.setdefault(spelling.casefold(), keyword)
        for group in kb.synonym_groups:
            for spelling in group:
                self.canonical.setdefault(spelling.casefold(), group[0])
        spellings = sorted(self.canonical, key=len, reverse=True)
        alternation = "|".join(re.escape(s) for s in spellings if s.strip()) or r"(?!x)x"
        # ASCII terms must not sit inside a longer word ("Ar" in "Aspect ratio"); Korean
        # terms may take particles directly ("로드락은"), so only a leading boundary applies.
        self.pattern = re.compile(rf"(?<![0-9A-Za-z])(?:{alternation})(?![0-9A-Za-z])", re.IGNORECASE)

    def find(self, text: str) -> list[tuple[int, str]]:
        """(position, canonical term) of every vocabulary term in `text`, longest match first."""
        return [(m.start(), self.canonical[m.group(0).casefold()]) for m in self.pattern.finditer(text)]

    def terms(self, text: str, *, subjects_only: bool = False) -> set[str]:
        """Canonical terms in `text`; `subjects_only` drops dimension words and very general terms."""
        found = {term for _, term in self.find(text)}
        if subjects_only:
            found = {t for t in found if t.casefold() not in GENERIC_TERMS}
        return found

    def canonical_of(self, word: str) -> str:
        """Canonical spelling of a word, or the word itself (case-folded) when not in the vocabulary."""
        return self.canonical.get(word.casefold(), word).casefold()


# ---------------------------------------------------------------- quantities

#: unit spelling -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "sccm": ("flow", 1.0),
    "slm": ("flow", 1000.0),
    "mtorr": ("pressure", 1e-3),
    "torr": ("pressure", 1.0),
    "mbar": ("pressure", 0.750062),
    "pa": ("pressure", 0.00750062),
    "°c": ("temperature", 1.0),
    "℃": ("temperature", 1.0),
    "ms": ("time", 1e-3),
    "초": ("time", 1.0),
    "s": ("time", 1.0),
    "분": ("time", 60.0),
    "å/cycle": ("gpc", 1.0),
    "nm": ("length", 10.0),
    "å": ("length", 1.0),
    "w": ("power", 1.0),
    "kw": ("power", 1000.0),
    "mhz": ("frequency", 1.0),
}

#: Korean order-of-magnitude words ("수십 sccm") as ranges of the multiplier.
MAGNITUDES = {"수": (2.0, 9.0), "수십": (20.0, 90.0), "수백": (200.0, 900.0), "수천": (2000.0, 9000.0), "수만": (2e4, 9e4)}

_NUMBER = r"(?:\d+(?:\.\d+)?\s*[×x]\s*10\^-?\d+|10\^-?\d+|\d+(?:\.\d+)?(?:e-?\d+)?|(?<![가-힣])(?:수십|수백|수천|수만|수)(?=[\s~\-–에]))"
_UNIT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?P<lo>{_NUMBER})(?:\s*(?P<lo_unit>{_UNIT})?\s*(?:~|-|–|에서)\s*(?P<hi>{_NUMBER}))?\s*(?P<unit>{_UNIT})(?![A-Za-z/·])"
    rf"(?:\s*(?:\([^)]*\)\s*)?(?P<bound>이하|이상|미만|초과))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    """A number or range with a unit, in the dimension's base unit."""

    dimension: str
    low: float
    high: float
    text: str

    @property
    def middle(self) -> float:
        """Geometric middle for positive ranges (scales compare by ratio), arithmetic otherwise."""
        if self.low > 0 and self.high > 0 and not self.dimension.startswith("temperature"):
            return math.sqrt(self.low * self.high)
        return (self.low + self.high) / 2


def _number_range(token: str) -> tuple[float, float]:
    token = token.replace(" ", "")
    if token in MAGNITUDES:
        return MAGNITUDES[token]
    if "^" in token:
        mantissa, _, exponent = token.partition("10^")
        scale = float(mantissa.rstrip("×x")) if mantissa.rstrip("×x") else 1.0
        value = scale * 10 ** float(exponent)
        return value, value
    value = float(token)
    return value, value


_RATE = re.compile(r"분당|초당|시간당|사이클당|per\s|/\s*(?:min|cycle)")
_DIFFERENCE = re.compile(r"\s*(?:씩|정도)?\s*(?:높|낮|차이|더|이내|편차|상승|하강|올라|떨어)")


def find_quantities(sentence: str) -> list[tuple[int, Quantity]]:
    """(position, quantity) for every number/range with a unit, e.g. '50~300 sccm', '수십 Torr 이하'."""
    found: list[tuple[int, Quantity]] = []
    for match in _QUANTITY.finditer(sentence):
        unit = match.group("unit").casefold()
        if unit == "s" and not re.match(r"\d", match.group("lo")):
            continue  # "수 s" never occurs; avoid reading Korean words as seconds
        dimension, factor = UNITS[unit]
        low, high = _number_range(match.group("lo"))
        if match.group("hi"):
            # "수백 sccm~수 slm": the low end may carry its own unit
            low_unit = UNITS.get((match.group("lo_unit") or unit).casefold(), (dimension, factor))
            if low_unit[0] != dimension:
                continue
            low, high = low * low_unit[1] / factor, _number_range(match.group("hi"))[1]
        low, high = sorted((low * factor, high * factor))
        bound = match.group("bound")
        if bound in ("이하", "미만"):
            low = high / 10 if dimension != "temperature" else high - 100
        elif bound in ("이상", "초과"):
            high = low * 10 if dimension != "temperature" else low + 100
        if _DIFFERENCE.match(sentence[match.end() :]):
            dimension += " difference"  # "10-20°C 높게" is a step, not a setpoint
        elif _RATE.search(sentence[max(0, match.start() - 8) : match.start()]):
            dimension += " rate"  # "분당 수십 nm" is a speed, not a thickness
        found.append((match.start(), Quantity(dimension, low, high, match.group(0).strip())))
    return found


def scales_disagree(a: Quantity, b: Quantity, ratio: float = 2.5) -> bool:
    """True when two quantities of one dimension describe clearly different values.

    Disjoint ranges disagree; a range inside the other agrees; other overlapping ones disagree
    when their middles differ by `ratio` or more ("수십 sccm 이하" vs "50~300 sccm",
    "수십에서 100 Torr" vs "수~수십 Torr"). Temperatures compare linearly.
    """
    if a.dimension != b.dimension:
        return False
    if a.dimension.startswith("temperature"):
        # "150-300°C" and "300°C 이상" meet at a boundary (the window and above it): only a
        # real gap counts, since °C is not a ratio scale.
        return max(a.low, b.low) - min(a.high, b.high) > 10
    if min(a.low, b.low) <= 0:
        return a.high < b.low or b.high < a.low
    if (a.low <= b.low and b.high <= a.high) or (b.low <= a.low and a.high <= b.high):
        return False  # one range inside the other: a narrower statement, not a different one
    lo, hi = sorted((a.middle, b.middle))
    disjoint = a.high * 1.25 < b.low or b.high * 1.25 < a.low
    return disjoint or hi / lo >= ratio


@dataclass(frozen=True)
class QuantityClaim:
    """'<subject terms> … <quantity>' found in one sentence of one document."""

    doc_id: str
    subjects: frozenset[str]
    quantity: Quantity
    sentence: str


def quantity_claims(doc: Document, vocab: Vocabulary) -> list[QuantityClaim]:
    """Quantities with the subject terms of their clause, else of the sentence's first clause,
    else of the document's first sentence (Korean drops a subject the reader already knows)."""
    claims: list[QuantityClaim] = []
    sentences = split_sentences(doc.text)
    topic = vocab.terms(sentences[0], subjects_only=True) if sentences else set()
    for sentence in sentences:
        clauses = _CLAUSE_END.split(sentence)
        head = vocab.terms(clauses[0], subjects_only=True)
        for clause in clauses:
            for _, quantity in find_quantities(clause):
                subjects = vocab.terms(clause, subjects_only=True) or head or topic
                if subjects:
                    claims.append(QuantityClaim(doc.id, frozenset(subjects), quantity, sentence))
    return claims


def same_subject(a: frozenset[str], b: frozenset[str]) -> bool:
    """Subjects overlap in at least half of the smaller set."""
    shared = len(a & b)
    return shared > 0 and shared / min(len(a), len(b)) >= 0.5


# ---------------------------------------------------------------- orderings

_COMPARATIVE_UP = re.compile(r"높|크|많|길|빠르|빨리|뜨겁|두껍")
_COMPARATIVE_DOWN = re.compile(r"낮|작|적|짧|느리|늦|차갑|얇")
_PARTICLE = re.compile(r"(의|이|가|을|를|은|는|와|과|로|으로|에서|에|도|쪽이|쪽)$")
#: Plain equipment nouns that the vocabulary does not list but orderings compare.
HEAD_ALIASES = {"valve": "밸브", "ald 밸브": "밸브", "라인": "배관", "line": "배관", "heated line": "배관", "캐니스터": "canister"}
ATTRIBUTES = ("온도", "압력", "유량", "flow", "증기압", "속도", "시간", "두께", "gpc")


@dataclass(frozen=True)
class OrderClaim:
    """'<low> < <high>' in some attribute, from a '<low>보다 <high> … 높다' sentence."""

    doc_id: str
    attribute: str
    low: str
    high: str
    sentence: str


def _head(phrase: str, vocab: Vocabulary) -> str:
    words = phrase.split()
    if not words:
        return ""
    # the noun phrase ends at the first word that carries a particle
    for end, word in enumerate(words):
        if _PARTICLE.search(word) and len(word) > 1:
            words = words[: end + 1]
            break
    last = _PARTICLE.sub("", words[-1]) or words[-1]
    canonical = vocab.canonical_of(last)
    return HEAD_ALIASES.get(canonical, canonical)


def order_claims(doc: Document, vocab: Vocabulary) -> list[OrderClaim]:
    """Pairwise orderings from comparative chains ("Canister보다 배관, 배관보다 밸브의 온도가 높도록")."""
    claims: list[OrderClaim] = []
    for sentence in split_sentences(doc.text):
        folded = sentence.casefold()
        attribute = next((a for a in ATTRIBUTES if a in folded), "")
        for match in re.finditer(r"(\S+)보다\s+([^,.]+)", sentence):
            left = HEAD_ALIASES.get(vocab.canonical_of(match.group(1)), vocab.canonical_of(match.group(1)))
            if re.match(r"\S*(?:높|낮|크|작|많|적|길|짧|빠|느)", match.group(2)):
                continue  # "온도가 ALD window보다 낮고": the other side is the subject before, not a noun after
            right = _head(re.split(r"\S+보다\s", match.group(2))[0], vocab)
            rest = sentence[match.end(1) :]
            up, down = _COMPARATIVE_UP.search(rest), _COMPARATIVE_DOWN.search(rest)
            if not left or not right or left == right or (up is None and down is None):
                continue
            rises = up is not None and (down is None or up.start() < down.start())
            low, high = (left, right) if rises else (right, left)
            claims.append(OrderClaim(doc.id, attribute, low, high, sentence))
    return claims


# ---------------------------------------------------------------- definitions

#: Kinds of thing a term can be defined as; a term defined as two kinds is a conflict.
KIND_WORDS = {
    "gauge": r"게이지|센서|gauge|sensor|manometer|진공계",
    "valve": r"밸브|valve",
}
_VALVE_STATE = re.compile(r"(?<![A-Za-z])(?:Open|Close)(?![A-Za-z])|열리|열린|열려|닫히|닫힌|닫혀|개폐|연결 여부|밸브를 (?:연다|닫)", re.IGNORECASE)
_OTHER_SUBJECT = re.compile(r"\S(?:이|가|은|는)\s")
_NEGATED = re.compile(r"(게이지|센서|gauge|sensor|밸브|valve|신호)[가이로]?\s*(?:아니|해석하는 것은 잘못|오해)")


@dataclass(frozen=True)
class DefinitionClaim:
    """'<term> is a <kind>' (or, with `negated`, 'is not a <kind>') in one sentence."""

    doc_id: str
    term: str
    kind: str
    negated: bool
    sentence: str


def _kind_of(phrase: str) -> str | None:
    for kind, words in KIND_WORDS.items():
        if re.search(words, phrase, re.IGNORECASE):
            return kind
    if re.search(r"개폐|열림|닫힘", phrase):
        return "valve"
    return None


def definition_claims(doc: Document, vocab: Vocabulary) -> list[DefinitionClaim]:
    """What the document says its terms are: copula definitions, appositions, valve states, negations."""
    claims: list[DefinitionClaim] = []
    for sentence in split_sentences(doc.text):
        for clause in _CLAUSE_END.split(sentence):
            claims.extend(_clause_definitions(doc.id, clause, sentence, vocab))
        claims.extend(_appositions(doc.id, sentence, vocab))
    return list(dict.fromkeys(c for c in claims if c.term.casefold() not in GENERIC_TERMS))


def _subjects(clause: str, vocab: Vocabulary) -> list[tuple[list[str], int]]:
    """Terms in subject position ('VG12와 VG13은', 'VG12/VG13 신호가', 'VG13의 상태는'), each with
    the offset where its predicate starts."""
    spans = [(m.start(), m.end(), vocab.canonical[m.group(0).casefold()]) for m in vocab.pattern.finditer(clause)]
    found: list[tuple[list[str], int]] = []
    i = 0
    while i < len(spans):
        terms, cursor, j = [spans[i][2]], spans[i][1], i + 1
        while j < len(spans) and re.fullmatch(r"\s*(?:와|과|/|,|및)\s*", clause[cursor : spans[j][0]]):
            terms.append(spans[j][2])
            cursor = spans[j][1]
            j += 1
        tail = re.match(r"(?:\s*(?:신호|값|상태)|의 (?:상태|인터락 로직))?(?:은|는|이|가)\s", clause[cursor:])
        if tail:
            found.append((terms, cursor + tail.end()))
        i = j
    return found


#: '<head>이다/이며/이고', or '…하는 <head>로' (a relative clause naming what the subject is).
_COPULA = re.compile(r"(\S+(?:\s\S+){0,3}?)(?:이다|다\.?$|이며|이고|이지만|로서)|(?<=는\s)(\S+(?:\s\S+)?)(?:으로|로)[\s,]")


def _nearest_subject(subjects: list[tuple[list[str], int]], position: int) -> list[str]:
    before = [terms for terms, start in subjects if start <= position]
    return before[-1] if before else []


def _clause_definitions(doc_id: str, clause: str, sentence: str, vocab: Vocabulary) -> list[DefinitionClaim]:
    subjects = _subjects(clause, vocab)
    claims: list[DefinitionClaim] = []
    for copula in _COPULA.finditer(clause):
        kind = _kind_of(copula.group(1) or copula.group(2))
        if kind is None or _NEGATED.search(clause[copula.start() : copula.end() + 8]):
            continue
        for term in _nearest_subject(subjects, copula.start()):
            claims.append(DefinitionClaim(doc_id, term, kind, False, sentence))
    for state in _VALVE_STATE.finditer(clause):
        near = [(terms, start) for terms, start in subjects if start <= state.start()]
        if not near:
            continue
        between = clause[near[-1][1] : state.start()]
        # "VG13이 읽는 로드락 압력의 차이가 … 열리도록": the verb belongs to 차이, not to VG13
        if len(between) <= 80 and not _OTHER_SUBJECT.search(between):
            claims.extend(DefinitionClaim(doc_id, t, "valve", False, sentence) for t in near[-1][0])
    for negation in _NEGATED.finditer(clause):
        kind = _kind_of(negation.group(1)) or ("valve" if negation.group(1) == "신호" else None)
        mentioned = [term for _, term in vocab.find(clause[: negation.start()])]
        if kind and mentioned:
            claims.append(DefinitionClaim(doc_id, mentioned[0], kind, True, sentence))
    return claims


def _appositions(doc_id: str, sentence: str, vocab: Vocabulary) -> list[DefinitionClaim]:
    """'Gate Valve(게이트 밸브, VG12/VG13 등)': the terms in brackets are the thing outside them."""
    claims: list[DefinitionClaim] = []
    for match in re.finditer(r"(\S+(?:\s\S+)?)\(([^)]*)\)", sentence):
        kind = _kind_of(match.group(1))
        if kind is None:
            continue
        for _, term in vocab.find(match.group(2)):
            if _kind_of(term) is None:  # 'Gate Valve(게이트 밸브)' restates itself
                claims.append(DefinitionClaim(doc_id, term, kind, False, sentence))
    return claims


def conflicting(a: DefinitionClaim, b: DefinitionClaim) -> bool:
    """Two claims about one term that cannot both hold."""
    if a.term != b.term:
        return False
    if a.negated and b.negated:
        return False
    if a.negated or b.negated:
        return a.kind == b.kind
    return a.kind != b.kind


@dataclass(frozen=True)
class DefinitionConflict:
    """An incoming document (or feedback target) that defines `term` differently from a KB document."""

    incoming_id: str
    existing_id: str
    term: str
    incoming: DefinitionClaim
    existing: DefinitionClaim


class DefinitionIndex:
    """What the KB's documents say each term is, growing as documents are added.

    The vocabulary is the KB's and the incoming file's together: importing into an empty
    KB still checks the file against itself (its first definition of a term wins). Without
    `incoming` it is the KB's own definitions, what feedback targets are checked against.
    """

    def __init__(self, kb: KnowledgeBase, incoming: KnowledgeBase | None = None) -> None:
        incoming = incoming or KnowledgeBase(documents=[])
        terms = KnowledgeBase(
            documents=[],
            keywords=list(dict.fromkeys([*kb.keywords, *incoming.keywords])),
            synonym_groups=merge_synonym_groups(kb.synonym_groups, incoming.synonym_groups),
        )
        self.vocab = Vocabulary(terms)
        self.by_term: dict[str, list[DefinitionClaim]] = {}
        #: Each KB document's title, then its keywords (case-folded): which one is *about* a term.
        self._about: dict[str, tuple[str, str]] = {
            d.id: (d.title.casefold(), " ".join(d.keywords).casefold()) for d in kb.documents
        }
        for doc in kb.documents:
            self.add(self.claims_of(doc))

    def claims_of(self, doc: Document) -> list[DefinitionClaim]:
        return definition_claims(doc, self.vocab)

    def add(self, claims: list[DefinitionClaim]) -> None:
        for claim in claims:
            self.by_term.setdefault(claim.term, []).append(claim)

    def first_conflict(self, doc_id: str, claims: list[DefinitionClaim]) -> DefinitionConflict | None:
        """The first claim that contradicts the KB, named against the document most about the
        term (its title names it, else its keywords do, else the first in KB order): "contradicts
        vacuum-gauge-001" tells a reviewer where to look; a flow-verification document that
        mentions "capacitance manometer(VG12)" in passing does not."""
        for claim in claims:
            known = [k for k in self.by_term.get(claim.term, []) if k.doc_id != doc_id and conflicting(claim, k)]
            if known:
                best = min(known, key=lambda k: self._aboutness(k.doc_id, claim.term))
                return DefinitionConflict(doc_id, best.doc_id, claim.term, claim, best)
        return None

    def _aboutness(self, doc_id: str, term: str) -> int:
        """0 when the document's title names `term`, 1 when its keywords do, 2 otherwise."""
        title, keywords = self._about.get(doc_id, ("", ""))
        needle = term.casefold()
        return 0 if needle in title else 1 if needle in keywords else 2
