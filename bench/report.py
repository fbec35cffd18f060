"""The self-contained HTML report of ``bench evaluate``: inline CSS and SVG, no assets.

Headline metrics, a recall@k curve (SVG), failures by stage, and a per-question table
(expected sources and answers, the first ranks, what was retrieved, why it failed).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.evaluate import Record

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
vertical-align:top;text-align:left;font-size:.9em;max-width:28em;overflow-wrap:anywhere}th{background:#f3f3f3}
.fail{background:#fff1f0}.ok{background:#f4fff4}.num{text-align:right}
svg text{font-size:11px;fill:#333}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def recall_svg(curve: list[float | None], width: int = 480, height: int = 260) -> str:
    """recall@k for k = 1..len(curve) as an inline SVG line plot (0..1 on the y axis)."""
    left, bottom, top, right = 40, 30, 10, 10
    w, h = width - left - right, height - top - bottom
    points = [(k + 1, v) for k, v in enumerate(curve) if v is not None]
    if not points:
        return "<p>(no question gives expected sources: no recall curve)</p>"
    n = max(len(curve), 2)

    def x(k: int) -> float:
        return left + (k - 1) * w / (n - 1)

    def y(v: float) -> float:
        return top + h - v * h

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="recall at k">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#999"/>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + w}" y2="{y(tick):.1f}" '
            f'stroke="#ddd"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
    for k in range(1, n + 1):
        if n <= 20 or k % 5 == 0 or k == 1:
            parts.append(f'<text x="{x(k):.1f}" y="{top + h + 16}" text-anchor="middle">{k}</text>')
    line = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#2563eb" stroke-width="2"/>')
    for k, v in points:
        parts.append(
            f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="3" fill="#2563eb">'
            f"<title>recall@{k} = {v:.3f}</title></circle>"
        )
    parts.append(
        f'<text x="{left + w / 2:.1f}" y="{height - 2}" text-anchor="middle">k</text></svg>'
    )
    return "".join(parts)


def html_report(summary: dict[str, Any], records: list[Record], title: str = "") -> str:
    s = summary
    metrics: list[tuple[str, str]] = [(f"hit@{k}", _num(v)) for k, v in s["hit"].items()]
    metrics += [(f"recall@{k}", _num(v)) for k, v in s["recall"].items()]
    metrics += [
        ("MRR", _num(s["mrr"])),
        ("nDCG@10", _num(s["ndcg@10"])),
        ("answer in retrieved text", _num(s["answer_in_retrieved"])),
        ("answer in packed context", _num(s["answer_in_packed"])),
        ("answer match (contains)", _num(s["answer_contains"])),
        ("answer token F1", _num(s["answer_f1"])),
        ("citation precision", _num(s["citation_precision"])),
        ("search ms p50 / p95", f"{s['search_ms']['p50']:.1f} / {s['search_ms']['p95']:.1f}"),
    ]
    if s["answer_ms"]:
        metrics.append(
            ("answer ms p50 / p95", f"{s['answer_ms']['p50']:.0f} / {s['answer_ms']['p95']:.0f}")
        )
    failures = "".join(
        f"<tr><td>{_e(why)}</td><td class=num>{n}</td></tr>" for why, n in s["failures"].items()
    )
    rows = []
    for i, r in enumerate(sorted(records, key=lambda r: r.badness()), 1):
        why = r.failure()
        ranks = ", ".join("-" if x is None else str(x) for x in r.source_ranks())
        retrieved = "<br>".join(
            _e(x.name) + (" <small>(hop 2)</small>" if x.hop == 2 else "") for x in r.retrieved[:5]
        )
        f1 = r.answer_f1()
        rows.append(
            f"<tr class={'fail' if why else 'ok'}><td class=num>{i}</td>"
            f"<td>{_e(r.question)}</td><td>{_e('; '.join(r.sources))}</td>"
            f"<td>{_e('; '.join(r.answers))}</td><td>{_e(ranks)}</td>"
            f"<td>{retrieved}</td><td>{_e(r.answer or '')}</td>"
            f"<td class=num>{'' if f1 is None else f'{f1:.2f}'}</td>"
            f"<td>{_e(why or 'ok')}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation {_e(title)}</title>
<style>{STYLE}</style></head><body>
<h1>Evaluation: {_e(title)}</h1>
<p>{s["questions"]} questions ({s["with_sources"]} with expected sources,
{s["with_answers"]} with expected answers), top {s["top_k"]}; passed {s["passed"]}.</p>
<h2>Metrics</h2>
<table>{"".join(f"<tr><th>{_e(k)}</th><td class=num>{v}</td></tr>" for k, v in metrics)}</table>
<h2>Recall@k</h2>
{recall_svg(s["recall_curve"])}
<h2>Failures by stage</h2>
<table><tr><th>why</th><th>questions</th></tr>{failures or "<tr><td>none</td><td></td></tr>"}
</table>
<h2>Questions (worst first)</h2>
<table><tr><th>#</th><th>question</th><th>expected sources</th><th>expected answers</th>
<th>ranks</th><th>retrieved (top 5)</th><th>answer</th><th>F1</th><th>why</th></tr>
{"".join(rows)}</table>
</body></html>
"""
