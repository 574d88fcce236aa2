"""The scorecard as one self-contained HTML file to send by e-mail.

No scripts and no external requests: the CSS is in the page and the charts are inline SVG. It is
built to be read with a screen reader as well as by eye: ``lang="en-GB"``, a table with a caption,
column and row headers and one ``<tbody>`` per KPI group headed by its own header row; RAG in words
and letters as well as fills (each fill reads at WCAG AA against the ink); every chart has a
``<title>``, a ``<desc>`` with its figures, and a visible caption. Every piece of text is escaped,
since contract words contain ``<``, ``>`` and ``&`` ("<45 days").

>>> render_html(report)[:15]  # doctest: +SKIP
b'<!DOCTYPE html>'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape

from kpibot.files.report import (
    BANDS,
    BENCHMARK_COLUMN,
    CHART_KEY,
    CHARTS_HEADING,
    COVER_LABELS,
    EXCEPTIONS_HEADING,
    HEADER_FILL,
    HEADING_FILL,
    HEADING_INK,
    INK,
    KEY_HEADING,
    LEAD_COLUMNS,
    NARRATIVE_HEADING,
    NO,
    NONE_LISTED,
    NOTE_PREFIX,
    NOTES_HEADING,
    RAG_FILL,
    RAG_LETTER,
    RAG_MEANING,
    RAG_ORDER,
    TABLE_NOTE,
    TAIL_COLUMNS,
    TITLE,
    TREND_KEY,
    TREND_TEXT,
    YES,
    Rag,
    Report,
    ReportChart,
    ReportRow,
    figure_places,
    format_value,
    point_label,
    position_label,
    rag_count_label,
    short_period,
)

_CSS = f"""
body{{font-family:Arial,Helvetica,sans-serif;color:{INK};background:#fff;margin:1.5em;font-size:14px}}
h1{{font-size:1.5em;margin:0 0 .5em}} h2{{font-size:1.2em;margin:1.5em 0 .5em}}
dl.cover{{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:0}}
dl.cover dt{{font-weight:bold}} dl.cover dd{{margin:0}}
ul.rag{{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.5em}}
ul.rag li{{padding:.3em .7em;border:1px solid #bfbfbf;font-weight:bold}}
table{{border-collapse:collapse;font-size:12px;margin-top:1em}}
caption{{text-align:left;font-weight:bold;font-size:1.1em;padding:.3em 0}}
th,td{{border:1px solid #bfbfbf;padding:.25em .4em;vertical-align:top;text-align:left}}
thead th{{background:{HEADER_FILL}}} td.n{{text-align:right;white-space:nowrap}}
tbody th[scope=rowgroup]{{background:{HEADING_FILL};color:{HEADING_INK};font-size:1.05em}}
tbody th[scope=row]{{font-weight:normal;min-width:18em}}
.rag-letter{{font-weight:bold}}
figure{{display:inline-block;margin:0 1em 1em 0;vertical-align:top;width:330px}}
figcaption{{font-size:12px}}
""".strip()
_LINE_INK, _TARGET_INK, _GRID = "#455A64", "#263238", "#E4E4E4"
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 330, 190, 46, 10, 12, 150


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _e(text: str) -> str:
    # Control characters are not allowed in HTML; a stray one from a PDF copy is dropped.
    return escape(_CONTROL.sub("", text), quote=True)


def _rag_style(rag: Rag | None) -> str:
    # Fills are inline as well as in classes, because some mail clients drop <style> blocks.
    return f' style="background:{RAG_FILL[rag]}"' if rag else ""


def _with_letter(text: str, rag: Rag | None) -> str:
    if not rag:
        return _e(text)
    return (
        f'{_e(text)} <abbr class="rag-letter" title="{_e(RAG_MEANING[rag])}">'
        f"{RAG_LETTER[rag]}</abbr>"
    )


def render_html(report: Report) -> bytes:
    """The report as the UTF-8 bytes of one self-contained HTML page."""
    out = [
        '<!DOCTYPE html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{_e(report.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n<main>\n",
    ]
    _cover(out, report)
    _table(out, report)
    _charts(out, report.charts)
    _texts(out, report)
    out.append("</main>\n</body>\n</html>\n")
    return "".join(out).encode("utf-8")


def _cover(out: list[str], report: Report) -> None:
    out.append(f'<header>\n<h1>{_e(TITLE)}: {_e(report.contract_name)}</h1>\n<dl class="cover">\n')
    facts = (
        ("contract", f"{report.contract_name} ({report.contract_id})"),
        ("commissioner", report.commissioner),
        ("provider", report.provider),
        ("period", report.period_label),
        ("year", report.contract_year_label),
    )
    for key, value in facts:
        out.append(f"<dt>{_e(COVER_LABELS[key])}</dt><dd>{_e(value)}</dd>\n")
    out.append(
        f'<dt>{_e(COVER_LABELS["generated"])}</dt><dd><time datetime="{report.generated_on:%Y-%m-%d}">'
        f"{report.generated_on:%d %B %Y}</time></dd>\n</dl>\n</header>\n"
    )
    out.append(f'<h2>{_e(COVER_LABELS["rag"])} {_e(report.period_label)}</h2>\n<ul class="rag">\n')
    for rag in RAG_ORDER:
        out.append(
            f"<li{_rag_style(rag)}>{_e(rag_count_label(rag))}: {report.rag_counts.get(rag, 0)}</li>\n"
        )
    out.append("</ul>\n")
    for key, lines in (
        ("money", report.money_lines),
        ("actions", report.action_plan_lines),
        ("late", report.late_returns_lines),
    ):
        out.append(f"<h2>{_e(COVER_LABELS[key])}</h2>\n")
        out.append(_list(lines))


def _list(lines: Sequence[str]) -> str:
    if not lines:
        return f"<p>{_e(NONE_LISTED)}</p>\n"
    return "<ul>\n" + "".join(f"<li>{_e(line)}</li>\n" for line in lines) + "</ul>\n"


def _table(out: list[str], report: Report) -> None:
    n = len(report.columns)
    lead = (*LEAD_COLUMNS[1:], BENCHMARK_COLUMN)
    width = len(lead) + n + len(TAIL_COLUMNS)
    out.append(
        f"<table>\n<caption>{_e(TITLE)}: {_e(report.contract_name)}, {_e(report.period_label)}. "
        f"{_e(TABLE_NOTE)}</caption>\n"
        f'<colgroup span="4"></colgroup><colgroup span="{len(lead) - 4}"></colgroup>'
        f'<colgroup span="{n + len(TAIL_COLUMNS)}"></colgroup>\n<thead>\n'
        f'<tr><th scope="colgroup" colspan="4">{_e(BANDS[0])}</th>'
        f'<th scope="colgroup" colspan="{len(lead) - 4}">{_e(BANDS[1])}</th>'
        f'<th scope="colgroup" colspan="{n + len(TAIL_COLUMNS)}">{_e(BANDS[2])}</th></tr>\n<tr>'
    )
    for title in (*lead, *report.columns, *TAIL_COLUMNS):
        out.append(f'<th scope="col">{_e(title)}</th>')
    out.append("</tr>\n</thead>\n")
    for group in report.groups:
        out.append(
            f'<tbody>\n<tr><th scope="rowgroup" colspan="{width}">{_e(group.name)}</th></tr>\n'
        )
        for row in group.rows:
            out.append(_row(row))
        out.append("</tbody>\n")
    out.append("</table>\n")


def _row(row: ReportRow) -> str:
    measure = _e(row.measure) + (
        f"<br><small>{_e(NOTE_PREFIX + row.note)}</small>" if row.note else ""
    )
    parts = [f'<tr><td>{_e(row.ref)}</td><th scope="row">{measure}</th>']
    for text in (row.frequency, row.polarity, row.target, row.tolerance, row.benchmark or ""):
        parts.append(f"<td>{_e(text)}</td>")
    for cell in row.cells:
        parts.append(
            f'<td class="n"{_rag_style(cell.rag)}>{_with_letter(cell.text, cell.rag)}</td>'
        )
    parts.append(f"<td{_rag_style(row.rag)}>{_e(position_label(row))}</td>")
    parts.append(f"<td>{_e(TREND_TEXT[row.trend])}</td>")
    critical = f"<strong>{YES}</strong>" if row.critical else NO
    parts.append(f"<td>{critical}</td></tr>\n")
    return "".join(parts)


def _charts(out: list[str], charts: Sequence[ReportChart]) -> None:
    out.append(f"<section>\n<h2>{_e(CHARTS_HEADING)}</h2>\n")
    if not charts:
        out.append(f"<p>{_e(NONE_LISTED)}</p>\n")
    for i, chart in enumerate(charts):
        out.append(_svg(chart, f"chart-{i + 1}"))
    out.append("</section>\n")


def _points(
    series: Sequence[float | None], x: list[float], y: Callable[[float], float]
) -> list[str]:
    """SVG polyline point lists, one per run of figures; a period without one leaves a gap."""
    runs: list[list[str]] = [[]]
    for xi, value in zip(x, series, strict=True):
        if value is None:
            runs.append([])
        else:
            runs[-1].append(f"{xi:.1f},{y(value):.1f}")
    return [" ".join(run) for run in runs if len(run) > 1]


def _svg(chart: ReportChart, ident: str) -> str:
    numbers = [v for s in (chart.values, chart.target, chart.tolerance) for v in s if v is not None]
    lo, hi = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 1.0)
    lo, hi = lo - pad, hi + pad
    n = max(len(chart.periods), 1)
    xs = [_LEFT + (i + 0.5) * (_W - _LEFT - _RIGHT) / n for i in range(len(chart.periods))]

    def y(v: float) -> float:
        return _BOTTOM - (v - lo) / (hi - lo) * (_BOTTOM - _TOP)

    title = f"{chart.ref} {chart.title}"
    parts = [
        f'<figure>\n<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'font-family="Arial,Helvetica,sans-serif" font-size="10">'
        f'<title id="{ident}-t">{_e(title)}</title><desc id="{ident}-d">'
        f"{_e(chart.text_alternative())}</desc>"
    ]
    for level in (lo + pad, (lo + hi) / 2, hi - pad):
        label = format_value(level, chart.unit, figure_places(round(level, 1)))
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="{_GRID}"/><text x="{_LEFT - 4}" y="{y(level) + 3:.1f}" '
            f'text-anchor="end" fill="{INK}">{_e(label)}</text>'
        )
    for series, dash in ((chart.tolerance, "2 3"), (chart.target, "6 4")):
        for points in _points(series, xs, y):
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{_TARGET_INK}" '
                f'stroke-width="1.2" stroke-dasharray="{dash}"/>'
            )
    for points in _points(chart.values, xs, y):
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{_LINE_INK}" stroke-width="2"/>'
        )
    for xi, period, value, rag in zip(xs, chart.periods, chart.values, chart.rags, strict=True):
        if value is not None:
            fill = RAG_FILL[rag] if rag else "#FFFFFF"
            parts.append(
                f'<circle cx="{xi:.1f}" cy="{y(value):.1f}" r="4" fill="{fill}" stroke="{INK}"/>'
            )
        upper, lower = short_period(period)
        letter = f" {RAG_LETTER[rag]}" if rag else ""
        for j, text in enumerate((upper, lower, point_label(value, chart) + letter)):
            parts.append(
                f'<text x="{xi:.1f}" y="{_BOTTOM + 12 + j * 11}" text-anchor="middle" '
                f'fill="{INK}">{_e(text)}</text>'
            )
    parts.append("</svg>\n")
    parts.append(f"<figcaption>{_e(title)}. {_e(CHART_KEY)}</figcaption>\n</figure>\n")
    return "".join(parts)


def _texts(out: list[str], report: Report) -> None:
    out.append(f"<section>\n<h2>{_e(EXCEPTIONS_HEADING)}</h2>\n")
    if report.exceptions:
        out.append("<dl>\n")
        for ref, text in report.exceptions:
            out.append(f"<dt><strong>{_e(ref)}</strong></dt><dd>{_paragraphs(text)}</dd>\n")
        out.append("</dl>\n")
    else:
        out.append(f"<p>{_e(NONE_LISTED)}</p>\n")
    out.append(f"</section>\n<section>\n<h2>{_e(NARRATIVE_HEADING)}</h2>\n")
    for heading, text in report.narrative or ((NONE_LISTED, ""),):
        out.append(f"<h3>{_e(heading)}</h3>\n{_paragraphs(text)}\n")
    out.append(f"</section>\n<section>\n<h2>{_e(NOTES_HEADING)}</h2>\n{_list(report.notes)}")
    out.append(f'</section>\n<section>\n<h2>{_e(KEY_HEADING)}</h2>\n<ul class="rag">\n')
    for rag in RAG_ORDER:
        out.append(f"<li{_rag_style(rag)}>{RAG_LETTER[rag]}: {_e(RAG_MEANING[rag])}</li>\n")
    out.append("</ul>\n<p>" + " &nbsp; ".join(_e(t) for t in TREND_TEXT.values()) + "</p>\n")
    out.append(f"<p>{_e(TREND_KEY)}</p>\n</section>\n")


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{_e(p)}</p>" for p in text.split("\n") if p.strip())
