"""Korean particles (조사) that agree with the noun they follow.

The legacy generator pasted "가" after every keyword ("MFC가", "로드락가"): 262 of 1480
questions were wrong. Agreement depends on whether the *spoken* last syllable has a final
consonant (받침), so English terms are judged by how Korean engineers read them aloud:
acronyms letter by letter (ALD → 에이엘디, vowel; sccm → …엠, consonant), numbers in
Sino-Korean (VG12 → 브이지십이, vowel; VG13 → …십삼, consonant), chemical formulas in
English (Al2O3 → …오쓰리, vowel) and words by their loanword spelling (Purge → 퍼지,
Interlock → 인터락). The 으로/로 pair treats a ㄹ final like a vowel (서울로, 레일로).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Final-sound classes of the spoken last syllable.
VOWEL = "vowel"
RIEUL = "rieul"  # ㄹ final: consonant for most pairs, vowel-like for 으로/로
CONSONANT = "consonant"

#: pair -> (form after a consonant, form after a vowel). Either order is accepted as input.
PARTICLE_PAIRS: dict[str, tuple[str, str]] = {
    "은/는": ("은", "는"),
    "이/가": ("이", "가"),
    "을/를": ("을", "를"),
    "과/와": ("과", "와"),
    "으로/로": ("으로", "로"),
    "이란/란": ("이란", "란"),
    "이나/나": ("이나", "나"),
    "이라/라": ("이라", "라"),
    "이랑/랑": ("이랑", "랑"),
    "아/야": ("아", "야"),
}
_ALIASES = {f"{v}/{c}": key for key, (c, v) in PARTICLE_PAIRS.items()}

# Letter names as read in Korean: only L, M, N, R end in a consonant (엘, 엠, 엔, 알).
_LETTER_FINAL = {ch: VOWEL for ch in "abcdefghijkopqstuvwxyz"}
_LETTER_FINAL.update({"l": RIEUL, "r": RIEUL, "m": CONSONANT, "n": CONSONANT})

# Sino-Korean digits (일 이 삼 사 오 육 칠 팔 구) and English digits for chemical formulas
# (원 투 쓰리 포 파이브 식스 세븐 에잇 나인).
_SINO_DIGIT = {"0": CONSONANT, "1": RIEUL, "2": VOWEL, "3": CONSONANT, "4": VOWEL, "5": VOWEL,
               "6": CONSONANT, "7": RIEUL, "8": RIEUL, "9": VOWEL}
_ENGLISH_DIGIT = {"0": VOWEL, "1": CONSONANT, "2": VOWEL, "3": VOWEL, "4": VOWEL, "5": VOWEL,
                  "6": VOWEL, "7": CONSONANT, "8": CONSONANT, "9": CONSONANT}

_ELEMENTS = set(
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se "
    "Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Hf Ta W Re Os Ir Pt Au "
    "Hg Tl Pb Bi Ru".split()
)

#: Domain words whose Korean reading the suffix rules below would get wrong.
_WORD_FINAL = {
    "foup": CONSONANT,  # 풉
    "efem": CONSONANT,  # 이펨
    "torr": VOWEL,  # 토르
    "mtorr": VOWEL,
    "lock": CONSONANT,  # 락
    "loadlock": CONSONANT,
    "interlock": CONSONANT,
    "robot": CONSONANT,  # 로봇
    "throughput": CONSONANT,  # 스루풋
    "output": CONSONANT,
    "input": CONSONANT,
    "target": CONSONANT,  # 타깃
    "alarm": CONSONANT,  # 알람
    "film": CONSONANT,  # 필름
    "system": CONSONANT,
    "step": CONSONANT,  # 스텝
    "chip": CONSONANT,
    "top": CONSONANT,
    "map": CONSONANT,
    "leak": VOWEL,  # 리크
    "check": VOWEL,  # 체크
    "set": VOWEL,  # 세트
    "window": VOWEL,  # 윈도우
    "flow": VOWEL,  # 플로우
    "slm": CONSONANT,  # 에스엘엠
    "sccm": CONSONANT,
    "gas": VOWEL,
    "ar": CONSONANT,  # 아르곤
    "he": CONSONANT,  # 헬륨
    "radical": RIEUL,  # 라디칼
    "control": RIEUL,
    "pedal": RIEUL,
    "scale": RIEUL,  # 스케일
    "cycle": RIEUL,  # 사이클
    "particle": RIEUL,
    "throttle": RIEUL,
    "nozzle": RIEUL,
    "module": RIEUL,
}

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_TRAILING_NOISE = re.compile(r"(\s*\([^()]*\)|[\s\"'’”»\]\}\.,!?:;…~-])+$")
_TAIL_TOKEN = re.compile(r"([A-Za-z0-9][A-Za-z0-9+./-]*|[가-힣]|%|°C)$")


def _hangul_final(ch: str) -> str:
    code = ord(ch) - _HANGUL_FIRST
    final = code % 28
    if final == 0:
        return VOWEL
    return RIEUL if final == 8 else CONSONANT


def _is_formula(token: str) -> bool:
    """Al2O3, H2O, TiN, NH3: element symbols with optional counts (VG12 is not: G is no element)."""
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", token)
    return bool(parts) and "".join(a + b for a, b in parts) == token and all(a in _ELEMENTS for a, _ in parts) and (
        any(b for _, b in parts) or len(parts) > 1
    )


def _number_final(digits: str, *, english: bool) -> str:
    digits = digits.split(".")[-1] if "." in digits else digits
    if english:
        return _ENGLISH_DIGIT[digits[-1]]
    stripped = digits.lstrip("0") or "0"
    if stripped == "0":
        return CONSONANT  # 영
    if stripped[-1] != "0":
        return _SINO_DIGIT[stripped[-1]]
    return CONSONANT  # 십, 백, 천, 만 all end in a consonant


def _word_final(word: str) -> str:
    """Final sound of an English word read as a Korean loanword (suffix rules + exceptions)."""
    w = word.lower()
    if w in _WORD_FINAL:
        return _WORD_FINAL[w]
    if w.endswith("ing"):
        return CONSONANT  # -잉
    if w.endswith(("tion", "sion", "ine", "one", "ion")):
        return CONSONANT  # -션, -인, -온
    if w.endswith(("le", "l")):
        return RIEUL  # -클, -얼
    if w.endswith(("m", "me")):
        return CONSONANT  # -엠, -임
    if w.endswith("n"):
        return CONSONANT  # 핀, 다운
    if w.endswith("ck"):
        return CONSONANT  # 락/록/백 (readback, feedback); "check" (체크) is an exception above
    # short vowel + p/t (step, robot) is a final consonant; clusters (pump, drift) add 으.
    if len(w) >= 3 and w[-1] in "pt" and w[-2] in "aeiou" and w[-3] not in "aeiou":
        return CONSONANT
    return VOWEL  # -er, -ge, -ve, -se, -d, -k, -s, -a, -o ... all read with a vowel ending


def _latin_final(token: str) -> str:
    """Final sound of a token made of Latin letters/digits (acronym, formula, word, model number)."""
    token = token.strip("+./-")
    low = token.lower()
    if low in _WORD_FINAL:
        return _WORD_FINAL[low]
    if token[-1].isdigit():
        run = re.search(r"[\d.]+$", token)
        digits = run.group(0) if run else token[-1]
        letters = token[: len(token) - len(digits)].rstrip("-")
        english = bool(letters) and _is_formula(token)
        return _number_final(digits.strip("."), english=english)
    last_word = re.split(r"[^A-Za-z]+", token)[-1] or token
    if _is_formula(token):
        return _LETTER_FINAL[token[-1].lower()]
    is_acronym = last_word.isupper() or (last_word.islower() and not re.search(r"[aeiou]", last_word))
    if is_acronym and len(last_word) <= 6:
        return _LETTER_FINAL[last_word[-1].lower()]
    return _word_final(last_word)


def final_sound(word: str) -> str:
    """VOWEL, RIEUL or CONSONANT for the spoken end of `word` (Hangul, English, numbers)."""
    core = _TRAILING_NOISE.sub("", word.strip()) or word.strip()
    if not core:
        return VOWEL
    last = core[-1]
    if _HANGUL_FIRST <= ord(last) <= _HANGUL_LAST:
        return _hangul_final(last)
    if core.endswith("%"):
        return VOWEL  # 퍼센트
    if core.endswith("°C"):
        return VOWEL  # 도
    match = re.search(r"[A-Za-z0-9][A-Za-z0-9.+-]*$", core)
    if match:
        return _latin_final(match.group(0))
    return VOWEL


def _pair(pair: str) -> tuple[str, str]:
    key = pair if pair in PARTICLE_PAIRS else _ALIASES.get(pair)
    if key is None:
        raise ValueError(f"unknown particle pair: {pair!r} (known: {', '.join(PARTICLE_PAIRS)})")
    return PARTICLE_PAIRS[key]


def pick_particle(word: str, pair: str) -> str:
    """The form of `pair` ("이/가", "은/는", ...) that agrees with `word`."""
    after_consonant, after_vowel = _pair(pair)
    sound = final_sound(word)
    if after_consonant == "으로":
        return after_vowel if sound in (VOWEL, RIEUL) else after_consonant
    return after_vowel if sound == VOWEL else after_consonant


def josa(word: str, pair: str) -> str:
    """`word` followed by the agreeing particle: josa("MFC", "이/가") -> "MFC가"."""
    return f"{word}{pick_particle(word, pair)}"


@dataclass(frozen=True)
class ParticleError:
    """One disagreeing particle: `term` + `found` where `expected` was right."""

    term: str
    found: str
    expected: str
    start: int


# Longest forms first so "으로" is not read as "로" and "이란" not as "이".
_CHECKED_FORMS = sorted({f for pair in PARTICLE_PAIRS.values() for f in pair} - {"아", "야", "이나", "나", "이라", "라", "이랑", "랑"}, key=len, reverse=True)
FORM_TO_PAIR = {f: key for key, pair in PARTICLE_PAIRS.items() for f in pair}
PARTICLE_AFTER = re.compile(r"(" + "|".join(_CHECKED_FORMS) + r")(?=(서|써)?([\s?.!,;:)\"'」]|$))")


def find_particle_errors(text: str, known_terms: list[str] | set[str] | tuple[str, ...]) -> list[ParticleError]:
    """Particles after any known term that disagree with it.

    Only terms we know are checked, because a bare "이" or "가" after an arbitrary word is
    often part of the word itself (사이, 증가); the longest term ending at a position wins.
    """
    errors: list[ParticleError] = []
    seen_ends: set[int] = set()
    for term in sorted({t for t in known_terms if t and t.strip() and t in text}, key=len, reverse=True):
        for start in _occurrences(text, term):
            end = start + len(term)
            if end in seen_ends:
                continue
            if term[0].isascii() and term[0].isalnum() and start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
                continue  # inside a longer Latin word (ALD in PEALD)
            if term[-1].isascii() and term[-1].isalnum() and end < len(text) and text[end].isascii() and text[end].isalnum():
                continue
            following = PARTICLE_AFTER.match(text, end)
            if not following:
                continue
            seen_ends.add(end)
            found = following.group(1)
            expected = pick_particle(term, FORM_TO_PAIR[found])
            if found != expected:
                errors.append(ParticleError(term, found, expected, start))
    return sorted(errors, key=lambda e: e.start)


def _occurrences(text: str, term: str) -> list[int]:
    # str.find, not re.finditer(re.escape(term)): thousands of distinct terms thrash re's cache
    found, start = [], text.find(term)
    while start >= 0:
        found.append(start)
        start = text.find(term, start + 1)
    return found
