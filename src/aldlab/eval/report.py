"""report.html (self-contained: CSS inline, plots as base64 PNG) and report.md.

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


def grouped_bars(
    groups: Sequence[str], systems: dict[str, dict[str, Any]], key: str, title: str, *, horizontal: bool = False
) -> str:
    """Key-fact recall per group (topic / difficulty), one bar per system."""
    import numpy as np

    names = list(systems)
    width = 0.8 / max(1, len(names))
    positions = np.arange(len(groups))
    if horizontal:
        fig, ax = _figure(8, max(3.0, 0.45 * len(groups) * max(1, len(names)) / 2 + 1))
    else:
        fig, ax = _figure(max(6.0, 1.3 * len(groups) + 2), 4)
    for i, name in enumerate(names):
        table = systems[name][key]
        values = [(table.get(g) or {}).get("value") or 0.0 for g in groups]
        offset = positions + (i - (len(names) - 1) / 2) * width
        if horizontal:
            ax.barh(offset, values, height=width, label=name)
        else:
            ax.bar(offset, values, width=width, label=name)
    labels = [plot_label(g) for g in groups]
    if horizontal:
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("key-fact recall")
    else:
        ax.set_xticks(positions, labels)
        ax.set_ylim(0, 1)
        ax.set_ylabel("key-fact recall")
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
    """Latency distribution per system."""
    fig, ax = _figure(max(5.0, 1.2 * len(systems) + 2), 3.6)
    data = [[r["latency_s"] for r in rows if r["system"] == name] or [0.0] for name in systems]
    ax.boxplot(data, tick_labels=list(systems))
    ax.set_ylabel("seconds per answer")
    ax.set_title("Latency")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


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
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def answers_section(metrics: dict[str, Any], rows: Sequence[dict[str, Any]], questions: Sequence[Question]) -> str:
    """Per-question answers of every system, collapsed, all model text escaped."""
    items = {(i["system"], i["id"]): i for i in metrics["items"]}
    parts = []
    for q in questions:
        label = f"{q.id} · {q.topic} · {q.difficulty} · {'답변 가능' if q.answerable else '범위 밖 / out of scope'} — {q.question}"
        table_rows = []
        for row in rows:
            if row["id"] != q.id:
                continue
            item = items.get((row["system"], q.id), {})
            recall = item.get("keyfact_recall")
            judge = item.get("judge")
            notes = [
                f"recall {recall:.2f}" if recall is not None else "",
                "거절 / refused" if row["refused"] else "",
                f"반복 / repetition {item['repetition']:.2f}" if item.get("has_repetition") else "",
                f"에코 / echo {item['echo']:.2f}" if item.get("has_echo") else "",
                f"support {item['support']:.2f}" if item.get("support") is not None else "",
                f"judge {judge['overall']:.1f}" if judge else "",
                f"{row['latency_s']:.1f}s",
            ]
            cited = ", ".join(c["id"] for c in row.get("contexts", []))
            table_rows.append(
                f"<tr><td>{html.escape(row['system'])}</td><td>{html.escape(row['answer'])}</td>"
                f"<td>{html.escape(' · '.join(n for n in notes if n))}</td><td>{html.escape(cited)}</td></tr>"
            )
        expect = " / ".join("|".join(g) for g in q.expect) or "(거절이 정답 / refusal expected)"
        reference = f"<p class='muted'>참고 답안 / reference: {html.escape(q.reference)}</p>" if q.reference else ""
        parts.append(
            f"<details><summary>{html.escape(label)}</summary>"
            f"<p class='muted'>핵심 사실 / key facts: {html.escape(expect)}</p>{reference}"
            "<table class='answers'><thead><tr><th>system</th><th>답변 / answer</th><th>점수 / scores</th>"
            f"<th>검색 문서 / contexts</th></tr></thead><tbody>{''.join(table_rows)}</tbody></table></details>"
        )
    return "\n".join(parts)


def render_html(metrics: dict[str, Any], rows: Sequence[dict[str, Any]], questions: Sequence[Question]) -> str:
    systems = metrics["systems"]
    topics = ordered_groups([q.topic for q in questions if q.answerable])
    difficulties = ordered_groups([q.difficulty for q in questions if q.answerable], DIFFICULTIES)
    plots = [
        (overall_plot(systems), "key-fact recall by system"),
        (grouped_bars(topics, systems, "by_topic", "Key-fact recall by topic", horizontal=True), "by topic"),
        (grouped_bars(difficulties, systems, "by_difficulty", "Key-fact recall by difficulty"), "by difficulty"),
        (refusal_plot(systems), "refusal precision/recall"),
        (latency_plot(rows, list(systems)), "latency"),
    ]
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
    images = "\n".join(_img(b64, alt) for b64, alt in plots)
    return f"""<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>aldlab 평가 보고서 / evaluation report</title><style>{CSS}</style></head><body>
<h1>aldlab 평가 보고서 / evaluation report</h1>
<p class="headline">{html.escape(metrics['headline'])}</p>
{f"<p>{html.escape(retrieval_summary(metrics) or '')}</p>" if retrieval_summary(metrics) else ""}
{gate_html}
<p class="muted">질문 / questions: {qinfo['n']} (답변 가능 / answerable {qinfo['answerable']}, 범위 밖 / out of scope
{qinfo['unanswerable']}, 참고 답안 / with reference {qinfo['with_reference']}) · {html.escape(qinfo['path'])}
· 소요 / duration {metrics.get('duration_s', 0):.0f}s · 95% bootstrap CI (±half-width)</p>
<p class="muted">{html.escape(SALAD_NOTE)}</p>
<h2>시스템 비교 / system comparison</h2>
{_html_table(header, table_rows)}
<h2>그래프 / plots</h2>
{images}
<h2>주제별 핵심 사실 재현율 / key-fact recall by topic</h2>
{_html_table(t_header, t_rows)}
<h2>난이도별 핵심 사실 재현율 / key-fact recall by difficulty</h2>
{_html_table(d_header, d_rows)}
{judge_html}
<h2>질문별 답변 / answers per question</h2>
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
        f"**{metrics['headline']}**",
        "",
        *([retrieval_summary(metrics) or "", ""] if retrieval_summary(metrics) else []),
        f"질문 / questions: {metrics['questions']['n']} · 95% bootstrap CI (± half-width) · "
        f"소요 / duration {metrics.get('duration_s', 0):.0f}s",
        "",
        "## 시스템 비교 / system comparison",
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
) -> None:
    atomic_write_text(html_path, render_html(metrics, rows, questions))
    atomic_write_text(md_path, render_markdown(metrics, questions))
