"""report.html (self-contained: CSS inline, plots as base64 PNG) and report.md.

The page reads in the order a reader asks (issue 25): one sentence and a small table on the
main system against the `passage` baseline (the top passage shown verbatim), then plots,
the adapter's training loss, and only then the wide all-metrics table and every answer with
its score. Per-group bars carry n and a bootstrap CI; groups under MIN_GROUP_N questions are
named in a note instead of drawn.

Plots use English labels: matplotlib's bundled DejaVu fonts have no Hangul glyphs, and this
machine (and CI) has no Korean font, so Korean labels would render as empty boxes. When a
Hangul font is installed, topic names are drawn in Korean. The HTML text around the plots
is Korean first, then English. Every piece of model output is escaped with html.escape.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aldlab.eval.metrics import format_estimate
from aldlab.evalset import DIFFICULTIES, Question
from aldlab.files import atomic_write_text

#: English plot labels for the seed's topic and difficulty names.
ENGLISH_LABELS = {
    "ALD 기본": "ALD basics",
    "압력": "Pressure",
    "챔버": "Chamber",
    "웨이퍼": "Wafer",
    "로드락": "Loadlock",
    "플라즈마": "Plasma",
    "경계": "Out of scope",
    "트러블슈팅": "Troubleshooting",
    "기본": "basic",
    "중급": "intermediate",
    "중상급": "upper-intermediate",
    "고급": "advanced",
    "종합": "mixed",
}
_HANGUL_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "UnDotum", "Baekmuk Gulim", "Malgun Gothic", "AppleGothic")


@functools.lru_cache(maxsize=1)
def hangul_font() -> str | None:
    """Name of an installed font with Hangul glyphs, if any."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _HANGUL_FONTS if name in installed), None)


def plot_label(text: str) -> str:
    """A label the plot font can draw."""
    if hangul_font():
        return text
    if text in ENGLISH_LABELS:
        return ENGLISH_LABELS[text]
    if any("\uac00" <= c <= "\ud7a3" for c in text):
        ascii_part = "".join(c for c in text if c.isascii()).strip(" /-_")
        return ascii_part or f"topic-{zlib.crc32(text.encode()) % 1000:03d}"
    return text


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if hangul_font():
        plt.rcParams["font.family"] = hangul_font()
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def ordered_groups(values: Sequence[str], known: Sequence[str] = ()) -> list[str]:
    """Known order first (e.g. difficulty levels), then the rest in first-seen order."""
    seen = list(dict.fromkeys(values))
    return [k for k in known if k in seen] + [v for v in seen if v not in known]


#: Groups (topics, difficulty levels) with fewer answerable questions are not drawn: the seed
#: set has 2 questions per topic, and a bar over 2 answers moves by 0.5 when one answer does.
MIN_GROUP_N = 3


def group_estimates(metrics: dict[str, Any], key: str, *, samples: int = 1000) -> dict[str, dict[str, dict[str, Any]]]:
    """system -> group -> key-fact recall with a bootstrap 95% CI over that group's answers.

    metrics.json keeps only mean and n per group; the per-answer items have what the
    interval needs (`key` is "topic" or "difficulty").
    """
    from aldlab.eval.metrics import bootstrap_mean

    values: dict[str, dict[str, list[float]]] = {}
    for item in metrics.get("items", []):
        if item.get("answerable") and item.get("keyfact_recall") is not None:
            values.setdefault(item["system"], {}).setdefault(item[key], []).append(float(item["keyfact_recall"]))
    return {
        system: {group: bootstrap_mean(recalls, samples=samples).to_json() for group, recalls in groups.items()}
        for system, groups in values.items()
    }


def shown_groups(groups: Sequence[str], estimates: dict[str, dict[str, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """(groups with at least MIN_GROUP_N answers, the rest as 'name (n=2)') — n is the same
    for every system, so the largest is taken."""
    def n_of(group: str) -> int:
        return max((e.get(group) or {}).get("n", 0) for e in estimates.values()) if estimates else 0

    shown = [g for g in groups if n_of(g) >= MIN_GROUP_N]
    hidden = [f"{g} (n={n_of(g)})" for g in groups if n_of(g) < MIN_GROUP_N]
    return shown, hidden


def grouped_bars(
    groups: Sequence[str],
    estimates: dict[str, dict[str, dict[str, Any]]],
    systems: Sequence[str],
    title: str,
    *,
    horizontal: bool = False,
) -> str:
    """Key-fact recall per group (topic / difficulty), one bar per system, with its 95% CI;
    each group's label carries its n."""
    import numpy as np

    names = list(systems)
    width = 0.8 / max(1, len(names))
    positions = np.arange(len(groups))
    if horizontal:
        fig, ax = _figure(8, max(3.0, 0.45 * len(groups) * max(1, len(names)) / 2 + 1))
    else:
        fig, ax = _figure(max(6.0, 1.3 * len(groups) + 2), 4)
    for i, name in enumerate(names):
        cells = [(estimates.get(name) or {}).get(g) or {} for g in groups]
        values = [c.get("value") or 0.0 for c in cells]
        low = [v - (c["low"] if c.get("low") is not None else v) for v, c in zip(values, cells, strict=True)]
        high = [(c["high"] if c.get("high") is not None else v) - v for v, c in zip(values, cells, strict=True)]
        offset = positions + (i - (len(names) - 1) / 2) * width
        bars = {"label": name, "capsize": 2, "error_kw": {"elinewidth": 0.8, "alpha": 0.7}}
        if horizontal:
            ax.barh(offset, values, height=width, xerr=[low, high], **bars)
        else:
            ax.bar(offset, values, width=width, yerr=[low, high], **bars)
    n_of = {g: max(((estimates.get(s) or {}).get(g) or {}).get("n", 0) for s in names) for g in groups}
    # below the bars, a second line keeps long level names ("upper-intermediate") apart
    labels = [f"{plot_label(g)}{' ' if horizontal else chr(10)}(n={n_of[g]})" for g in groups]
    if horizontal:
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("key-fact recall (95% CI)")
    else:
        ax.set_xticks(positions, labels)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("key-fact recall (95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    return _png(fig)


def overall_plot(systems: dict[str, dict[str, Any]]) -> str:
    """Key-fact recall per system with its 95% bootstrap interval."""
    names = list(systems)
    fig, ax = _figure(max(5.0, 1.2 * len(names) + 2), 3.6)
    values, errors_low, errors_high = [], [], []
    for name in names:
        est = systems[name]["keyfact_recall"]
        value = est.get("value") or 0.0
        values.append(value)
        errors_low.append(value - (est.get("low") if est.get("low") is not None else value))
        errors_high.append((est.get("high") if est.get("high") is not None else value) - value)
    ax.bar(names, values, yerr=[errors_low, errors_high], capsize=5, color="#4C72B0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("key-fact recall (95% CI)")
    ax.set_title("Key-fact recall by system")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def refusal_plot(systems: dict[str, dict[str, Any]]) -> str:
    """Refusal precision and recall per system."""
    import numpy as np

    names = list(systems)
    positions = np.arange(len(names))
    fig, ax = _figure(max(5.0, 1.3 * len(names) + 2), 3.6)
    for i, (key, label) in enumerate(
        (("refusal_precision", "precision"), ("refusal_recall", "recall"), ("false_refusal_rate", "false refusals"))
    ):
        values = [systems[n][key].get("value") or 0.0 for n in names]
        ax.bar(positions + (i - 1) * 0.27, values, width=0.27, label=label)
    ax.set_xticks(positions, names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Refusal on unanswerable vs answerable questions")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def latency_plot(rows: Sequence[dict[str, Any]], systems: Sequence[str]) -> str:
    """Seconds per answer per system, as measured in the eval: a batch's time divided by its
    questions (see `LATENCY_NOTE`)."""
    fig, ax = _figure(max(5.0, 1.2 * len(systems) + 2), 3.6)
    data = [[r["latency_s"] for r in rows if r["system"] == name] or [0.0] for name in systems]
    ax.boxplot(data, tick_labels=list(systems))
    ax.set_ylabel("seconds per answer (batched)")
    ax.set_title("Latency in the batched eval (not interactive)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


LATENCY_NOTE = (
    "평가는 질문 여러 개를 한 번에 생성하고(--batch-size) 그 시간을 질문 수로 나눕니다. 그래서 이 값은 처리량에 가깝고, "
    "질문 하나씩 답하는 aldlab ask·chat·웹 페이지의 대기 시간은 이보다 깁니다(검색과 모델 로딩 포함). "
    "/ The eval generates several questions at once (--batch-size) and divides the batch's time among them, so this "
    "is closer to throughput; an interactive answer (aldlab ask, chat, the web page) is generated alone and takes longer."
)


# --- training loss -------------------------------------------------------------------

#: Per-row padded lengths of two batch kinds must differ by this factor for the loss curve
#: to split them: with `group_by_length` a step is all retrieval rows (~600 tokens with their
#: passages) or all closed-book rows (~150), 2.4x apart in the cpu-demo run.
LENGTH_GAP_RATIO = 1.8


def training_history(adapter_dir: str | Path) -> tuple[list[dict[str, Any]], int] | None:
    """(history, batch size) from the adapter's training_meta.json, or None without one."""
    import json

    path = Path(adapter_dir) / "training_meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    history = meta.get("history") or []
    batch_size = int((meta.get("config") or {}).get("batch_size") or 1)
    return (history, batch_size) if any("loss" in h for h in history) else None


def split_steps_by_length(steps: Sequence[dict[str, Any]], batch_size: int) -> float | None:
    """The padded tokens per row that separates long (retrieval) from short (closed-book)
    steps, or None when the lengths do not fall into two groups.

    The largest gap in the sorted per-row lengths splits them if the two sides differ by at
    least LENGTH_GAP_RATIO; the threshold is the gap's midpoint.
    """
    lengths = sorted(h["padded_tokens"] / max(1, batch_size) for h in steps if h.get("padded_tokens"))
    if len(lengths) < 4:
        return None
    ratio, index = max((b / max(a, 1e-9), i) for i, (a, b) in enumerate(zip(lengths, lengths[1:])))
    if ratio < LENGTH_GAP_RATIO:
        return None
    return (lengths[index] + lengths[index + 1]) / 2


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_plot(history: Sequence[dict[str, Any]], batch_size: int) -> tuple[str, str]:
    """The training loss as two series (long retrieval steps, short closed-book steps) when
    the step lengths split, else one smoothed series; plus the caption saying which and why."""
    steps = [h for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    threshold = split_steps_by_length(steps, batch_size)
    fig, ax = _figure(8, 4)
    if threshold is not None:
        groups = {
            "retrieval rows (long)": [h for h in steps if h["padded_tokens"] / batch_size >= threshold],
            "closed-book rows (short)": [h for h in steps if h["padded_tokens"] / batch_size < threshold],
        }
        medians = {}
        for (label, group), color in zip(groups.items(), ("tab:green", "tab:red"), strict=True):
            xs, ys = [h["step"] for h in group], [h["loss"] for h in group]
            ax.plot(xs, ys, "o", color=color, alpha=0.35, markersize=4)
            ax.plot(xs, moving_average(ys, 5), color=color, label=f"{label}, mean of 5 steps")
            late = sorted(ys[len(ys) // 2 :])
            medians[label] = late[len(late) // 2] if late else float("nan")
        long_m, short_m = medians.values()
        caption = (
            f"학습은 길이가 비슷한 행끼리 배치를 묶어서(group_by_length) 한 스텝이 검색 문서가 붙은 긴 행(행당 패딩 토큰 ≥ {threshold:.0f}) "
            f"또는 문서 없는 짧은 closed-book 행만으로 이뤄집니다. 두 종류의 손실 수준이 크게 달라(후반 중앙값 {long_m:.2f} vs {short_m:.2f}) "
            "한 줄로 그리면 톱니처럼 오르내리므로 따로 그리고, 점은 스텝별 값, 선은 5스텝 평균입니다. "
            f"/ Training batches rows of similar length together (group_by_length), so a step is either all retrieval rows "
            f"with their passages (≥ {threshold:.0f} padded tokens a row) or all short closed-book rows. Their losses sit at "
            f"very different levels (late-run medians {long_m:.2f} vs {short_m:.2f}), so one line zig-zags between them: they "
            "are drawn apart, dots per step, lines a 5-step mean."
        )
    else:
        xs, ys = [h["step"] for h in steps], [h["loss"] for h in steps]
        ax.plot(xs, ys, "o", color="tab:blue", alpha=0.35, markersize=4)
        ax.plot(xs, moving_average(ys, 5), color="tab:blue", label="train loss, mean of 5 steps")
        caption = (
            "점은 스텝별 학습 손실(배치마다 행의 종류가 달라 들쭉날쭉), 선은 5스텝 평균입니다. "
            "/ Dots: per-step train loss (each batch mixes rows differently, so it jumps); line: 5-step mean."
        )
    if evals:
        ax.plot(*zip(*evals, strict=True), "s-", color="tab:orange", label="eval loss (same held-out rows)")
        caption += " 평가 손실은 매번 같은 평가 행으로 재므로 추세를 가장 잘 보여 줍니다. / The eval loss uses the same held-out rows each time: the clearest trend."
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per supervised token")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig), caption


def loss_section(adapter_dirs: dict[str, str] | None) -> str:
    """A loss plot per adapter that has a training log (training_meta.json), else nothing."""
    parts = []
    for name, directory in (adapter_dirs or {}).items():
        found = training_history(directory)
        if found is None:
            continue
        png, caption = loss_plot(*found)
        parts.append(
            f"<h3>{html.escape(name)} <span class='muted'>({html.escape(str(directory))})</span></h3>"
            f"{_img(png, f'training loss of {name}')}<p class='muted'>{html.escape(caption)}</p>"
        )
    if not parts:
        return ""
    return "<h2>학습 손실 / training loss</h2>" + "".join(parts)


# --- tables --------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COMPARISON_COLUMNS = (
    ("핵심 사실 재현율 / key-fact recall", lambda s: format_estimate(s["keyfact_recall"])),
    ("거절 정밀도 / refusal precision", lambda s: format_estimate(s["refusal_precision"])),
    ("거절 재현율 / refusal recall", lambda s: format_estimate(s["refusal_recall"])),
    ("오거절 / false refusals", lambda s: format_estimate(s["false_refusal_rate"])),
    ("반복·에코 답변 / looping or echoing answers", lambda s: format_estimate(s["repetition_or_echo_rate"])),
    ("근거율 / support", lambda s: format_estimate(s["support"])),
    ("반복 / repetition", lambda s: format_estimate(s["repetition"])),
    ("에코 / prompt echo", lambda s: format_estimate(s["echo"])),
    ("ROUGE-L (형태소 / morphemes)", lambda s: format_estimate(s["rouge_l"])),
    ("chrF", lambda s: format_estimate(s["chrf"])),
    ("한글 비율 / Hangul share", lambda s: format_estimate(s["hangul_share"])),
    ("한국어 정상 / Korean OK", lambda s: format_estimate(s["korean_ok"])),
    ("길이(자) / length (chars)", lambda s: format_estimate(s["length_chars"], 0)),
    ("지연(초) / latency (s)", lambda s: format_estimate(s["latency_s"], 2)),
)


def _salad_note() -> str:
    from aldlab.eval.metrics import ECHO_THRESHOLD, NGRAM, REPETITION_THRESHOLD

    return (
        f"반복 = 반복된 단어 {NGRAM}-gram 비율 (≥ {REPETITION_THRESHOLD:g}이면 반복 답변), 에코 = 시스템 프롬프트·RAG 지시문·질문에서 "
        f"복사한 {NGRAM}-gram 비율 (≥ {ECHO_THRESHOLD:g}이면 에코), 근거율 = 답변의 내용 형태소 중 주어진 문서에 있는 비율 (RAG, 거절 제외) "
        f"/ repetition = share of repeated word {NGRAM}-grams (looping from {REPETITION_THRESHOLD:g}); echo = share of {NGRAM}-grams "
        f"copied from the system prompt, RAG instruction or question (echo from {ECHO_THRESHOLD:g}); support = share of the "
        "answer's content morphemes found in its contexts (RAG systems, refusals excluded)."
    )


SALAD_NOTE = _salad_note()


def retrieval_summary(metrics: dict[str, Any]) -> str | None:
    """'정답 문서 검색 / gold passage retrieved: hit@1 0.62, hit@3 0.75 (n=61)', or None without doc_ids."""
    hits = metrics.get("retrieval")
    if not hits:
        return None
    return (
        f"정답 문서 검색 / gold passage retrieved: hit@1 {hits['hit@1']:.3f}, hit@3 {hits['hit@3']:.3f} "
        f"(답변 가능 질문 / answerable questions n={hits['n']})"
    )


def comparison_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the system comparison table (shared by HTML and Markdown)."""
    header = ["시스템 / system", *(name for name, _ in COMPARISON_COLUMNS)]
    judge = metrics.get("judge")
    if judge:
        header.append("LLM 평가 / judge (1-5)")
    rows = []
    for name, summary in metrics["systems"].items():
        row = [name, *(fn(summary) for _, fn in COMPARISON_COLUMNS)]
        if judge:
            row.append(fmt(judge["rubric"].get(name, {}).get("overall"), 2))
        rows.append(row)
    return header, rows


def group_table(metrics: dict[str, Any], key: str, order: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    systems = metrics["systems"]
    groups = ordered_groups([g for s in systems.values() for g in s[key]], order)
    header = ["", *systems]
    rows = []
    for g in groups:
        cells = []
        for s in systems.values():
            cell = s[key].get(g)
            cells.append(f"{cell['value']:.2f} (n={cell['n']})" if cell and cell["value"] is not None else "–")
        rows.append([g, *cells])
    return header, rows


def judge_tables(metrics: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    judge = metrics.get("judge")
    if not judge:
        return []
    from aldlab.eval.judge import CRITERIA

    header = ["시스템 / system", *CRITERIA, "평균 / overall", "n"]
    rows = [
        [name, *(fmt(r.get(c), 2) for c in CRITERIA), fmt(r.get("overall"), 2), fmt(r.get("n"))]
        for name, r in judge["rubric"].items()
    ]
    tables = [("LLM 평가 루브릭 / judge rubric", header, rows)]
    if judge.get("pairwise"):
        p_header = ["비교 / comparison", "후보 승 / candidate wins", "기준 승 / baseline wins", "무승부 / ties", "후보 승률 / win rate", "순서 일관성 / order consistency"]
        p_rows = [
            [key, fmt(r["wins_b"]), fmt(r["wins_a"]), fmt(r["ties"]), fmt(r["b_win_rate"], 2), fmt(r["order_consistency"], 2)]
            for key, r in judge["pairwise"].items()
        ]
        tables.append(("쌍대 비교 (양쪽 순서) / pairwise, both orders", p_header, p_rows))
    return tables


# --- at a glance ---------------------------------------------------------------------

#: The yardstick every generated answer is read against: the top retrieved passage, verbatim.
BASELINE_SYSTEM = "passage"


def _counts(metrics: dict[str, Any], system: str) -> dict[str, int]:
    """Refusal counts of one system from the per-answer items."""
    items = [i for i in metrics.get("items", []) if i["system"] == system]
    return {
        "unanswerable": sum(not i["answerable"] for i in items),
        "refused_unanswerable": sum(bool(i["refused"]) and not i["answerable"] for i in items),
        "answerable": sum(bool(i["answerable"]) for i in items),
        "refused_answerable": sum(bool(i["refused"]) and bool(i["answerable"]) for i in items),
    }


def verdict(metrics: dict[str, Any]) -> str:
    """One sentence on the main system against the passage baseline, read from the CI of
    their key-fact recall difference (not from the two point values)."""
    main = metrics["primary_system"]
    delta = (metrics.get("keyfact_recall_deltas") or {}).get(f"{main} vs {BASELINE_SYSTEM}")
    if not delta or delta.get("value") is None:
        value = metrics["systems"][main]["keyfact_recall"]
        return f"주 시스템 / main system {main}: 핵심 사실 재현율 / key-fact recall {format_estimate(value)}"
    low, high = delta.get("low"), delta.get("high")
    if delta.get("n", 0) < 2:  # no interval from a single question
        low = high = None
    diff = format_estimate(delta, signed=True)
    if high is not None and high < 0:
        ko, en = "1위 문서를 그대로 보여 주는 것보다 핵심 사실을 덜 담습니다", "carries fewer key facts than showing the top passage verbatim"
    elif low is not None and low > 0:
        ko, en = "1위 문서를 그대로 보여 주는 것보다 핵심 사실을 더 담습니다", "carries more key facts than showing the top passage verbatim"
    else:
        ko, en = (
            "1위 문서를 그대로 보여 주는 것과 핵심 사실 재현율 차이가 불확실합니다 (95% CI가 0을 포함)",
            "is not measurably different from showing the top passage verbatim (the 95% CI spans 0)",
        )
    return f"{main}: {ko} (차이 / Δ {diff}). / {main} {en}."


def glance_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The headline table: main system vs the passage baseline on the few numbers a reader
    needs first. Shared by HTML and Markdown."""
    main = metrics["primary_system"]
    systems = metrics["systems"]
    names = [main] + ([BASELINE_SYSTEM] if BASELINE_SYSTEM in systems and BASELINE_SYSTEM != main else [])
    header = ["", *(f"{n} (주 시스템 / main)" if n == main else f"{n} (1위 문서 그대로 / top passage verbatim)" for n in names)]
    base_len = (systems.get(BASELINE_SYSTEM, {}).get("length_chars") or {}).get("value")

    def length(name: str) -> str:
        value = (systems[name].get("length_chars") or {}).get("value")
        if value is None:
            return "–"
        ratio = f" ({value / base_len:.2f}× passage)" if base_len and name != BASELINE_SYSTEM else ""
        return f"{value:.0f}{ratio}"

    counts = {n: _counts(metrics, n) for n in names}
    rows = [
        ["핵심 사실 재현율 (95% CI) / key-fact recall", *(format_estimate(systems[n]["keyfact_recall"]) for n in names)],
        ["답변 길이 (자) / answer length (chars)", *(length(n) for n in names)],
        ["범위 밖 질문 거절 / out-of-scope questions refused",
         *(f"{counts[n]['refused_unanswerable']}/{counts[n]['unanswerable']}" for n in names)],
        ["답할 수 있는데 거절 / answerable questions refused",
         *(f"{counts[n]['refused_answerable']}/{counts[n]['answerable']}" for n in names)],
    ]
    return header, rows


def gold_retrieval_line(metrics: dict[str, Any]) -> str:
    """Whether retrieval found the gold passage (shared by every RAG system), or why not measured."""
    return retrieval_summary(metrics) or (
        "정답 문서 검색 / gold passage retrieved: 측정 안 됨 — 질문에 정답 문서(doc_ids)가 없습니다 / "
        "not measured: the questions name no gold documents (doc_ids)"
    )


# --- HTML ----------------------------------------------------------------------------

CSS = """
body{font-family:"Noto Sans KR","Malgun Gothic","Apple SD Gothic Neo",sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.5;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.headline{background:#eef5ff;border-left:4px solid #4C72B0;padding:.6rem 1rem;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}.answers td{text-align:left;white-space:pre-wrap}
details{margin:.4rem 0}summary{cursor:pointer}.muted{color:#777;font-size:.85rem}.ok{color:#1a7f37}.bad{color:#b42318}
.glance td,.glance th{font-size:.95rem;padding:.35rem .7rem}.scroll{overflow-x:auto}
.score,.answers td.score{font-variant-numeric:tabular-nums;white-space:nowrap}.answers th{text-align:left}summary .score{color:#555;font-size:.85rem}
h3{font-size:1.05rem;margin-bottom:.2rem}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def answer_score(item: dict[str, Any], answerable: bool) -> str:
    """What one answer scored, in a few characters: key facts found for an answerable
    question ('2/3 · 0.67', '거절 ✗' when wrongly refused), '거절 ✓' / '답변 ✗' otherwise."""
    if not item:
        return "–"
    refused = bool(item.get("refused"))
    if not answerable:
        return "거절 ✓ / refused ✓" if refused else "답변 ✗ / answered ✗"
    hits = item.get("keyfact_hits") or []
    recall = item.get("keyfact_recall")
    text = f"{sum(hits)}/{len(hits)} · {recall:.2f}" if hits and recall is not None else "–"
    return text + (" · 거절 ✗ / refused ✗" if refused else "")


def answers_section(metrics: dict[str, Any], rows: Sequence[dict[str, Any]], questions: Sequence[Question]) -> str:
    """Per-question answers of every system, collapsed; each line shows every system's score
    so a reader can pick the questions worth opening. All model text is escaped."""
    items = {(i["system"], i["id"]): i for i in metrics["items"]}
    systems = list(metrics["systems"])
    parts = []
    for q in questions:
        label = f"{q.id} · {q.topic} · {q.difficulty} · {'답변 가능' if q.answerable else '범위 밖 / out of scope'} — {q.question}"
        scores = " · ".join(
            f"{name} {answer_score(items.get((name, q.id), {}), q.answerable).split(' / ')[0]}" for name in systems
        )
        table_rows = []
        for row in rows:
            if row["id"] != q.id:
                continue
            item = items.get((row["system"], q.id), {})
            judge = item.get("judge")
            notes = [
                f"반복 / repetition {item['repetition']:.2f}" if item.get("has_repetition") else "",
                f"에코 / echo {item['echo']:.2f}" if item.get("has_echo") else "",
                f"support {item['support']:.2f}" if item.get("support") is not None else "",
                f"judge {judge['overall']:.1f}" if judge else "",
                f"{row['latency_s']:.1f}s",
            ]
            cited = ", ".join(c["id"] for c in row.get("contexts", []))
            table_rows.append(
                f"<tr><td>{html.escape(row['system'])}</td>"
                f"<td class='score'>{html.escape(answer_score(item, q.answerable))}</td>"
                f"<td>{html.escape(row['answer'])}</td>"
                f"<td>{html.escape(' · '.join(n for n in notes if n))}</td><td>{html.escape(cited)}</td></tr>"
            )
        expect = " / ".join("|".join(g) for g in q.expect) or "(거절이 정답 / refusal expected)"
        reference = f"<p class='muted'>참고 답안 / reference: {html.escape(q.reference)}</p>" if q.reference else ""
        parts.append(
            f"<details><summary>{html.escape(label)}<br><span class='score'>{html.escape(scores)}</span></summary>"
            f"<p class='muted'>핵심 사실 / key facts: {html.escape(expect)}</p>{reference}"
            "<table class='answers'><thead><tr><th>system</th><th>점수 / score</th><th>답변 / answer</th>"
            f"<th>기타 / other</th><th>검색 문서 / contexts</th></tr></thead><tbody>{''.join(table_rows)}</tbody></table></details>"
        )
    return "\n".join(parts)


def _plot_with_note(png: str | None, alt: str, hidden: Sequence[str], what: str) -> str:
    """A grouped plot and the note naming the groups left out for having too few questions."""
    out = _img(png, alt) if png else ""
    if hidden:
        out += (
            f"<p class='muted'>질문이 {MIN_GROUP_N}개 미만인 {what}는 막대에서 뺐습니다 (아래 표에는 있음) / "
            f"{what_en(what)} with fewer than {MIN_GROUP_N} questions are left out of the plot (they are in the table "
            f"below): {html.escape(', '.join(hidden))}</p>"
        )
    return out


def what_en(what: str) -> str:
    return {"주제": "topics", "난이도": "difficulty levels"}.get(what, what)


def render_html(
    metrics: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    questions: Sequence[Question],
    adapter_dirs: dict[str, str] | None = None,
) -> str:
    """The page: the headline first (main system vs the passage baseline), then plots, the
    training loss, the full metrics table and every answer."""
    systems = metrics["systems"]
    topics = ordered_groups([q.topic for q in questions if q.answerable])
    difficulties = ordered_groups([q.difficulty for q in questions if q.answerable], DIFFICULTIES)
    by_topic, by_difficulty = group_estimates(metrics, "topic"), group_estimates(metrics, "difficulty")
    shown_topics, hidden_topics = shown_groups(topics, by_topic)
    shown_levels, hidden_levels = shown_groups(difficulties, by_difficulty)
    topic_png = grouped_bars(shown_topics, by_topic, list(systems), "Key-fact recall by topic", horizontal=True) if shown_topics else None
    level_png = grouped_bars(shown_levels, by_difficulty, list(systems), "Key-fact recall by difficulty") if shown_levels else None
    header, table_rows = comparison_table(metrics)
    t_header, t_rows = group_table(metrics, "by_topic", topics)
    d_header, d_rows = group_table(metrics, "by_difficulty", DIFFICULTIES)
    qinfo = metrics["questions"]
    gate = metrics.get("fail_under")
    gate_html = ""
    if gate:
        cls, word = ("ok", "통과 / passed") if gate["passed"] else ("bad", "미달 / below threshold")
        gate_html = (
            f"<p class='{cls}'>기준 / gate: {html.escape(gate['system'])} key-fact recall "
            f"{gate['value']:.3f} ≥ {gate['threshold']:.3f}? {word}</p>"
        )
    judge_html = "".join(f"<h2>{html.escape(t)}</h2>{_html_table(h, r)}" for t, h, r in judge_tables(metrics))
    if metrics.get("judge"):
        judge_html += f"<p class='muted'>judge: {html.escape(str(metrics['judge'].get('model')))}, 실패 / failures: {metrics['judge']['failures']}</p>"
    g_header, g_rows = glance_rows(metrics)
    return f"""<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>aldlab 평가 보고서 / evaluation report</title><style>{CSS}</style></head><body>
<h1>aldlab 평가 보고서 / evaluation report</h1>
<p class="headline">{html.escape(verdict(metrics))}</p>
{_html_table(g_header, g_rows, "glance")}
<p>{html.escape(gold_retrieval_line(metrics))}</p>
{gate_html}
<p class="muted">질문 / questions: {qinfo['n']} (답변 가능 / answerable {qinfo['answerable']}, 범위 밖 / out of scope
{qinfo['unanswerable']}, 참고 답안 / with reference {qinfo['with_reference']}) · {html.escape(qinfo['path'])}
· 소요 / duration {metrics.get('duration_s', 0):.0f}s · [a, b] = 95% bootstrap CI</p>
<h2>그래프 / plots</h2>
{_img(overall_plot(systems), "key-fact recall by system")}
{_plot_with_note(topic_png, "by topic", hidden_topics, "주제")}
{_plot_with_note(level_png, "by difficulty", hidden_levels, "난이도")}
{_img(refusal_plot(systems), "refusal precision/recall")}
{_img(latency_plot(rows, list(systems)), "latency, batched eval")}
<p class="muted">{html.escape(LATENCY_NOTE)}</p>
{loss_section(adapter_dirs)}
<h2>전체 지표 / all metrics</h2>
<div class="scroll">{_html_table(header, table_rows)}</div>
<p class="muted">{html.escape(SALAD_NOTE)}</p>
<h2>주제별 핵심 사실 재현율 / key-fact recall by topic</h2>
{_html_table(t_header, t_rows)}
<h2>난이도별 핵심 사실 재현율 / key-fact recall by difficulty</h2>
{_html_table(d_header, d_rows)}
{judge_html}
<h2>질문별 답변 / answers per question</h2>
<p class="muted">점수 = 찾은 핵심 사실/전체 · 재현율, 범위 밖 질문은 거절 ✓ / 답변 ✗ / score = key facts found/total · recall;
out-of-scope questions: refused ✓ or answered ✗</p>
{answers_section(metrics, rows, questions)}
</body></html>
"""


# --- Markdown ------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(metrics: dict[str, Any], questions: Sequence[Question]) -> str:
    topics = ordered_groups([q.topic for q in questions if q.answerable])
    header, rows = comparison_table(metrics)
    parts = [
        "# aldlab 평가 보고서 / evaluation report",
        "",
        f"**{verdict(metrics)}**",
        "",
        _md_table(*glance_rows(metrics)),
        "",
        gold_retrieval_line(metrics),
        "",
        f"질문 / questions: {metrics['questions']['n']} · [a, b] = 95% bootstrap CI · "
        f"소요 / duration {metrics.get('duration_s', 0):.0f}s",
        "",
        metrics["headline"],
        "",
        "## 전체 지표 / all metrics",
        "",
        _md_table(header, rows),
        "",
        SALAD_NOTE,
        "",
        "## 주제별 / by topic (key-fact recall)",
        "",
        _md_table(*group_table(metrics, "by_topic", topics)),
        "",
        "## 난이도별 / by difficulty (key-fact recall)",
        "",
        _md_table(*group_table(metrics, "by_difficulty", DIFFICULTIES)),
        "",
    ]
    for title, h, r in judge_tables(metrics):
        parts += [f"## {title}", "", _md_table(h, r), ""]
    gate = metrics.get("fail_under")
    if gate:
        parts += [f"Gate: {gate['system']} key-fact recall {gate['value']:.3f} vs {gate['threshold']:.3f} → {'pass' if gate['passed'] else 'FAIL'}", ""]
    return "\n".join(parts)


def write_reports(
    metrics: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    questions: Sequence[Question],
    html_path: Path,
    md_path: Path,
    adapter_dirs: dict[str, str] | None = None,
) -> None:
    """report.html and report.md; `adapter_dirs` (name -> dir) add each adapter's training loss."""
    atomic_write_text(html_path, render_html(metrics, rows, questions, adapter_dirs))
    atomic_write_text(md_path, render_markdown(metrics, questions))
