"""KPI charts for chat: plain data in, PNG bytes out.

The command layer turns evaluated figures into the small frozen dataclasses below, and these
functions draw them. They use matplotlib's object API (``Figure`` plus ``FigureCanvasAgg``) and
never ``pyplot``, and they write no rcParams, so several threads may render at once and the same
data always gives the same bytes. No I/O and no clock reads.

Layout is computed in pixels from measured text rather than by matplotlib's constrained layout,
which would cost a second full text-measuring pass per render.

>>> chart = KpiChartData(
...     title="childrens-trust · Assessments completed within 45 days",
...     unit="percent",
...     polarity="bigger",
...     points=[ChartPoint("2019/20 Q1", 91.0, "green", target=90.0, tolerance=85.0)],
... )
>>> render_kpi_chart(chart)[:8] == PNG_SIGNATURE
True
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Literal

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Affine2D

Unit = Literal["percent", "count", "days", "score", "rate", "grade"]
Polarity = Literal["bigger", "smaller"]
Rag = Literal["green", "amber", "red", "grey"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100
RAG_COLOURS: dict[str, str] = {
    "green": "#2e7d32",
    "amber": "#f9a825",
    "red": "#c62828",
    "grey": "#9e9e9e",
}
RAG_MEANINGS = {"green": "Met", "amber": "Within tolerance", "red": "Not met", "grey": "No target"}
_RAG_SHORT = {"green": "G", "amber": "A", "red": "R", "grey": "NT"}
_DIRECTION = {"bigger": "Higher is better ↑", "smaller": "Lower is better ↓"}
_UNIT_AXIS = {"count": "Count", "days": "Days", "score": "Score", "rate": "Rate", "grade": "Grade"}
_UNITS = ("percent", "count", "days", "score", "rate", "grade")

# Everything that is not a RAG state keeps clear of the RAG colours, so that a red pixel on a
# chart always means a red figure.
_INK, _MUTED, _GRIDLINE, _SPINE = "#212121", "#616161", "#e4e4e4", "#b0bec5"
_LINE, _TARGET, _BENCHMARK, _CRITICAL = "#455a64", "#263238", "#1565c0", "#6a1b9a"
_BAND, _NO_FIGURE, _EMPTY_CELL, _EMPTY_INK = "#fdecc8", "#757575", "#f4f4f4", "#bdbdbd"
_PAD = 10
_PANEL_RIGHT = 34  # room for the last period's label and value, clear of the next panel


@dataclass(frozen=True)
class ChartPoint:
    """One period of one KPI: its figure, its RAG, and the lines it is judged against.

    ``value`` is None when no figure arrived. ``pending`` marks a provisional figure (submitted
    but not yet confirmed), drawn hollow. Target, tolerance and critical failure are per point
    because they step when the contract year changes.

    >>> ChartPoint("2019/20 Q3", 87.5, "amber", target=90.0, tolerance=85.0).rag
    'amber'
    """

    period: str
    value: float | None
    rag: Rag = "grey"
    pending: bool = False
    target: float | None = None
    tolerance: float | None = None
    benchmark: float | None = None
    critical_failure: float | None = None

    def __post_init__(self) -> None:
        if self.rag not in RAG_COLOURS:
            raise ValueError(f"rag must be one of {sorted(RAG_COLOURS)}, not {self.rag!r}")


@dataclass(frozen=True)
class KpiChartData:
    """One KPI over time, oldest period first. Percent values run from 0 to 100.

    >>> KpiChartData("demo · Visits", "count", "bigger", [ChartPoint("2019-07", 12, "green")]).unit
    'count'
    """

    title: str
    unit: Unit
    polarity: Polarity
    points: Sequence[ChartPoint] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise ValueError(f"unit must be one of {list(_UNITS)}, not {self.unit!r}")
        if self.polarity not in _DIRECTION:
            raise ValueError(f"polarity must be 'bigger' or 'smaller', not {self.polarity!r}")
        object.__setattr__(self, "points", tuple(self.points))


@dataclass(frozen=True)
class RagGridData:
    """A KPI × period table of RAG states, one row per KPI; a cell is None when no figure came.

    >>> RagGridData("demo · RAG", ["Visits"], ["2019/20 Q1"], [["green"]]).cells
    (('green',),)
    """

    title: str
    rows: Sequence[str]
    columns: Sequence[str]
    cells: Sequence[Sequence[Rag | None]]

    def __post_init__(self) -> None:
        cells = tuple(tuple(row) for row in self.cells)
        if len(cells) != len(self.rows) or any(len(row) != len(self.columns) for row in cells):
            raise ValueError(
                f"cells must be {len(self.rows)} rows of {len(self.columns)} columns, "
                "one row per KPI and one column per period"
            )
        unknown = {c for row in cells for c in row if c is not None and c not in RAG_COLOURS}
        if unknown:
            raise ValueError(f"cells must be a RAG colour or None, not {sorted(unknown)}")
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "cells", cells)


@dataclass(frozen=True)
class _Style:
    title: float
    ticks: float
    legend: float
    marker: float
    line: float


_FULL = _Style(title=15, ticks=12, legend=11, marker=11, line=2.2)
_PANEL = _Style(title=10.5, ticks=9.5, legend=11, marker=8, line=1.7)


@dataclass(frozen=True)
class _Drawn:
    """What a drawn KPI needs from the layout: legend entries and the size of its tick labels."""

    handles: list[tuple[Artist, str]]
    ytick_px: float
    xtick_lines: int


def render_kpi_chart(data: KpiChartData, width_px: int = 900, height_px: int = 450) -> bytes:
    """Draw one KPI's figures against its target, tolerance band and benchmark, as a PNG.

    >>> png = render_kpi_chart(KpiChartData("demo · Visits", "count", "smaller", []), 600, 300)
    >>> png.startswith(PNG_SIGNATURE)
    True
    """
    canvas, renderer = _new_canvas(width_px, height_px)
    fig = canvas.figure
    title = _wrap(data.title, renderer, _FULL.title, width_px - 2 * _PAD, bold=True)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    drawn = _draw_kpi(ax, data, _FULL, renderer, width_px * 0.88)
    labels = [label for _, label in drawn.handles]
    columns = _legend_columns(renderer, labels, _FULL.legend, width_px - 2 * _PAD)
    legend_px = math.ceil(len(drawn.handles) / columns) * _line_px(_FULL.legend) * 1.3
    footer_px = _PAD + _line_px(11)
    _place(
        ax,
        (width_px, height_px),
        left=_PAD + drawn.ytick_px,
        right=_PAD + 16,
        top=_PAD + _line_px(_FULL.title) * (title.count("\n") + 1) + 16,
        bottom=footer_px + legend_px + drawn.xtick_lines * _line_px(_FULL.ticks) + 18,
    )
    _heading(fig, title, _FULL.title, (width_px, height_px))
    _legend(fig, drawn.handles, columns, footer_px / height_px, _FULL.legend)
    fig.text(
        _PAD / width_px, _PAD / height_px, _DIRECTION[data.polarity], fontsize=11, color=_MUTED
    )
    return _png(canvas)


def render_rag_grid(data: RagGridData, width_px: int = 900, height_px: int | None = None) -> bytes:
    """Draw a KPI × period RAG table for the quarterly summary; height follows the row count.

    >>> grid = RagGridData("demo · RAG", ["Visits", "Reviews"], ["Q1", "Q2"],
    ...                    [["green", "red"], [None, "amber"]])
    >>> render_rag_grid(grid).startswith(PNG_SIGNATURE)
    True
    """
    n_rows, n_cols = max(len(data.rows), 1), max(len(data.columns), 1)
    font = 9.5 if n_rows <= 30 else 9.0
    row_px = 24 if n_rows <= 30 else 21
    canvas, renderer = _new_canvas(width_px, 1)
    title = _wrap(data.title, renderer, 14, width_px - 2 * _PAD, bold=True)
    # Columns get room for their (two-line) period labels first; KPI names get the rest.
    split = [line for c in data.columns for line in c.split(" ", 1)]
    col_need = max((_text_px(renderer, s, font)[0] for s in _longest(split)), default=0.0) + 8
    label_room = min(width_px * 0.45, width_px - 2 * _PAD - 8 - n_cols * col_need)
    label_limit = max(8, int(label_room / (font * DPI / 72 * 0.56)))
    for _attempt in range(2):
        row_labels = [_truncate(r, label_limit) for r in data.rows]
        # Every label is measured: names cut to one length still differ in width by a tenth.
        label_px = max((_text_px(renderer, s, font)[0] for s in set(row_labels)), default=0.0)
        if label_px <= label_room or label_limit == 8:
            break
        label_limit = max(8, int(label_limit * label_room / label_px))
    col_px = (width_px - 2 * _PAD - label_px - 8) / n_cols
    col_labels = _fit_labels(data.columns, renderer, col_px, font, thin=False)
    header_px = _line_px(14) * (title.count("\n") + 1) + 12
    header_px += _line_px(font) * max(s.count("\n") + 1 for s in [*col_labels, ""]) + 10
    legend_labels = [f"{_RAG_SHORT[r]}  {RAG_MEANINGS[r]}" for r in RAG_COLOURS] + ["–  No figure"]
    legend_cols = _legend_columns(renderer, legend_labels, 11, width_px - 2 * _PAD)
    footer_px = _PAD + math.ceil(len(legend_labels) / legend_cols) * _line_px(11) * 1.3 + 6
    height_px = height_px or round(_PAD + header_px + n_rows * row_px + footer_px)
    canvas.figure.set_size_inches(width_px / DPI, height_px / DPI)
    fig = canvas.figure
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    size = (width_px, height_px)
    _place(ax, size, left=_PAD + label_px + 8, right=_PAD, top=_PAD + header_px, bottom=footer_px)

    codes = np.array([[_GRID_CODES[c] for c in row] for row in data.cells], dtype=float)
    colours = [_EMPTY_CELL, *RAG_COLOURS.values()]
    if data.rows and data.columns:
        ax.pcolormesh(
            codes.reshape(len(data.rows), len(data.columns)),
            cmap=ListedColormap(colours),
            norm=BoundaryNorm(np.arange(-0.5, len(colours)), len(colours)),
            edgecolors="white",
            linewidth=2,
        )
        ax.add_collection(_cell_labels(ax, data.cells, font))
    else:
        ax.text(
            0.5,
            0.5,
            "No KPIs to show",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=12,
            color=_MUTED,
        )
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(len(data.columns)) + 0.5, col_labels, parse_math=False)
    ax.set_yticks(np.arange(len(data.rows)) + 0.5, row_labels, parse_math=False)
    ax.tick_params(length=0, labelsize=font, colors=_INK, pad=4)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _heading(fig, title, 14, size)
    patches = [Patch(facecolor=c, edgecolor="none") for c in RAG_COLOURS.values()]
    patches.append(Patch(facecolor=_EMPTY_CELL, edgecolor=_EMPTY_INK))
    _legend(fig, list(zip(patches, legend_labels, strict=True)), legend_cols, _PAD / height_px, 11)
    return _png(canvas)


def render_small_multiples(
    charts: Sequence[KpiChartData],
    columns: int = 3,
    width_px: int = 1200,
    panel_height_px: int = 300,
    title: str | None = None,
) -> bytes:
    """Draw several KPIs as a grid of small charts, e.g. this quarter's reds and ambers.

    >>> few = [KpiChartData(f"demo · KPI {i}", "count", "bigger", []) for i in range(4)]
    >>> render_small_multiples(few, columns=2, title="Reds and ambers").startswith(PNG_SIGNATURE)
    True
    """
    if not charts:
        raise ValueError("render_small_multiples needs at least one chart")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, not {columns}")
    columns = min(columns, len(charts))
    n_rows = math.ceil(len(charts) / columns)
    canvas, renderer = _new_canvas(width_px, 1)
    heading = _wrap(title or "", renderer, 16, width_px - 2 * _PAD, bold=True)
    header_px = _PAD + (_line_px(16) * (heading.count("\n") + 1) + 10 if title else 0)
    panel_w = (width_px - 2 * _PAD) / columns
    panels: list[tuple[Axes, _Drawn, str]] = []
    arrow_px = _text_px(renderer, "↑ better", 9.5)[0] + 12
    handles: dict[str, Artist] = {}
    for chart in charts:
        ax = canvas.figure.add_axes((0.0, 0.0, 1.0, 1.0))
        drawn = _draw_kpi(ax, chart, _PANEL, renderer, panel_w * 0.8)
        for artist, label in drawn.handles:
            handles.setdefault(label, artist)
        title_px = panel_w - drawn.ytick_px - _PANEL_RIGHT - 6 - arrow_px
        panels.append((ax, drawn, _wrap(chart.title, renderer, _PANEL.title, title_px, True)))
    legend_cols = _legend_columns(renderer, list(handles), 11, width_px - 2 * _PAD)
    legend_px = math.ceil(len(handles) / legend_cols) * _line_px(11) * 1.3
    footer_px = _PAD + _line_px(11) + legend_px + 6
    height_px = round(header_px + n_rows * panel_height_px + footer_px)
    size = (width_px, height_px)
    canvas.figure.set_size_inches(width_px / DPI, height_px / DPI)
    for i, (ax, drawn, panel_title) in enumerate(panels):
        row, col = divmod(i, columns)
        x0 = _PAD + col * panel_w
        y0 = header_px + row * panel_height_px
        top = y0 + _line_px(_PANEL.title) * (panel_title.count("\n") + 1) + 12
        _place(
            ax,
            size,
            left=x0 + drawn.ytick_px + 6,
            right=width_px - x0 - panel_w + _PANEL_RIGHT,
            top=top,
            bottom=height_px - y0 - panel_height_px + drawn.xtick_lines * _line_px(9.5) + 20,
        )
        ax.set_title(
            panel_title,
            loc="left",
            fontsize=_PANEL.title,
            fontweight="bold",
            pad=6,
            parse_math=False,
        )
        arrow = "↑ better" if charts[i].polarity == "bigger" else "↓ better"
        ax.set_title(arrow, loc="right", fontsize=9.5, color=_MUTED, pad=6)
    if title:
        _heading(canvas.figure, heading, 16, size)
    pairs = [(artist, label) for label, artist in handles.items()]
    _legend(canvas.figure, pairs, legend_cols, (_PAD + _line_px(11) + 6) / height_px, 11)
    note = "Arrows by each title show which direction is better"
    canvas.figure.text(_PAD / width_px, _PAD / height_px, note, fontsize=11, color=_MUTED)
    return _png(canvas)


_GRID_CODES: dict[str | None, int] = {None: 0, "green": 1, "amber": 2, "red": 3, "grey": 4}


def _draw_kpi(
    ax: Axes, data: KpiChartData, style: _Style, renderer: RendererAgg, axes_px: float
) -> _Drawn:
    """Draw one KPI into ``ax``; the caller positions the axes afterwards."""
    points, n = data.points, len(data.points)
    ax.tick_params(labelsize=style.ticks, colors=_INK, length=3)
    ax.grid(axis="y", color=_GRIDLINE, linewidth=0.9)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color(_SPINE)
    if n == 0:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "No figures yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=style.title,
            color=_MUTED,
        )
        return _Drawn([], 0.0, 0)

    xs = np.arange(n, dtype=float)
    values = np.array([_finite(p.value) for p in points])
    benchmarks = np.array([_finite(p.benchmark) for p in points])
    targets = [_finite_or_none(p.target) for p in points]
    tolerances = [_finite_or_none(p.tolerance) for p in points]
    criticals = [_finite_or_none(p.critical_failure) for p in points]
    present = np.isfinite(values)
    handles: list[tuple[Artist, str]] = []

    banded = [t is not None and tol is not None for t, tol in zip(targets, tolerances, strict=True)]
    for start, stop in _runs(banded):
        sx, top = _steps(targets[start:stop], offset=start)
        _, bottom = _steps(tolerances[start:stop], offset=start)
        ax.fill_between(sx, top, bottom, color=_BAND, linewidth=0, zorder=1)
    if any(banded):
        handles.append((Patch(facecolor=_BAND, edgecolor="none"), "Tolerance band"))
    for series, colour, dashes, label in (
        (targets, _TARGET, (0, (6, 3)), "Target"),
        (criticals, _CRITICAL, (0, (1.5, 1.5)), "Critical failure"),
    ):
        if any(v is not None for v in series):
            sx, sy = _steps(series, offset=0)
            (line,) = ax.plot(sx, sy, color=colour, linestyle=dashes, linewidth=1.8, zorder=3)
            handles.append((line, label))
    if np.isfinite(benchmarks).any():
        (line,) = ax.plot(
            xs,
            benchmarks,
            color=_BENCHMARK,
            linestyle=(0, (4, 2)),
            linewidth=1.5,
            marker="D",
            markersize=style.marker * 0.45,
            zorder=3,
        )
        handles.append((line, "National average"))

    ax.plot(xs, values, color=_LINE, linewidth=style.line, zorder=4, solid_capstyle="round")
    for rag, colour in RAG_COLOURS.items():
        for pending in (False, True):
            idx = [
                i
                for i, p in enumerate(points)
                if present[i] and (p.rag, p.pending) == (rag, pending)
            ]
            if idx:
                ax.plot(
                    xs[idx],
                    values[idx],
                    linestyle="none",
                    marker="o",
                    clip_on=False,
                    zorder=5,
                    markersize=style.marker,
                    markerfacecolor="white" if pending else colour,
                    markeredgecolor=colour if pending else "white",
                    markeredgewidth=2.4 if pending else 1.4,
                )
        if any(present[i] and p.rag == rag for i, p in enumerate(points)):
            handles.append((_marker(colour, "white", style), RAG_MEANINGS[rag]))
    if any(present[i] and p.pending for i, p in enumerate(points)):
        handles.append((_marker("white", _LINE, style, edge=2.0), "Provisional"))
    missing = np.flatnonzero(~present)
    if missing.size:
        # A hollow marker on the baseline shows that the gap is a missing figure, not a drawing fault.
        ax.plot(
            xs[missing],
            np.full(missing.size, 0.035),
            transform=ax.get_xaxis_transform(),
            linestyle="none",
            marker="o",
            markersize=style.marker * 0.55,
            clip_on=False,
            markerfacecolor="white",
            markeredgecolor=_NO_FIGURE,
            markeredgewidth=1.3,
            zorder=5,
        )
        handles.append((_marker("white", _NO_FIGURE, style, edge=1.3, scale=0.55), "No figure"))

    # A tolerance with no target draws nothing, so it must not stretch the axis either.
    drawn_tolerances = [tol if band else None for tol, band in zip(tolerances, banded, strict=True)]
    extents: list[Sequence[float | None] | np.ndarray] = [values, benchmarks, targets]
    extents += [drawn_tolerances, criticals]
    ytick_px = _set_y_axis(ax, data.unit, extents, style, renderer)
    ax.set_xlim(-0.5, n - 0.5)
    x_labels = _fit_labels([p.period for p in points], renderer, axes_px / n, style.ticks)
    ax.set_xticks(xs, x_labels, parse_math=False)
    if not present.any():
        ax.text(
            0.5,
            0.5,
            "No figures reported",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=style.title,
            color=_MUTED,
        )
    else:
        last = int(np.flatnonzero(present)[-1])
        ax.annotate(
            _format_value(float(values[last]), data.unit),
            (xs[last], values[last]),
            xytext=(0, style.marker * 0.9 + 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=style.ticks,
            fontweight="bold",
            color=_INK,
            zorder=6,
            bbox={
                "boxstyle": "round,pad=0.2",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.85,
            },
        )
    x_lines = max(s.count("\n") + 1 for s in x_labels)
    return _Drawn(handles, ytick_px, x_lines)


def _set_y_axis(
    ax: Axes,
    unit: str,
    series: Sequence[Sequence[float | None] | np.ndarray],
    style: _Style,
    renderer: RendererAgg,
) -> float:
    """Zoom the value axis to the data and return the pixels its labels need on the left."""
    numbers = [float(v) for s in series for v in s if v is not None and math.isfinite(v)]
    if not numbers:
        numbers = [0.0, 100.0] if unit == "percent" else [0.0, 1.0]
    low, high = min(numbers), max(numbers)
    span = high - low or max(abs(high), 1.0) * 0.2
    # The extra headroom above the data leaves space for the latest-value label.
    bottom, top = low - span * 0.12, high + span * 0.24
    ax.set_ylim(bottom, top)
    locator = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=unit in ("grade", "count"))
    ticks = [float(t) for t in locator.tick_values(bottom, top) if bottom <= t <= top]
    # The padding may run past 0 or 100%; the ticks stay inside what the unit can take.
    if low >= 0:
        ticks = [t for t in ticks if t >= 0]
    if unit == "percent" and high <= 100:
        ticks = [t for t in ticks if t <= 100]
    labels = [_format_tick(t, unit) for t in ticks]
    ax.set_yticks(ticks, labels)
    width = max((_text_px(renderer, s, style.ticks)[0] for s in _longest(labels)), default=0.0)
    if unit in _UNIT_AXIS:
        ax.set_ylabel(_UNIT_AXIS[unit], fontsize=style.ticks, color=_MUTED, labelpad=4)
        width += _line_px(style.ticks) + 6
    return width + 10


def _new_canvas(width_px: int, height_px: int) -> tuple[FigureCanvasAgg, RendererAgg]:
    if not (120 <= width_px <= 4000 and 1 <= height_px <= 8000):
        raise ValueError(
            f"a chart must be 120–4000 px wide and up to 8000 px high, not {width_px}×{height_px}"
        )
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    return canvas, canvas.get_renderer()  # type: ignore[no-untyped-call]


def _png(canvas: FigureCanvasAgg) -> bytes:
    buffer = BytesIO()
    # print_png, not savefig: savefig reads rcParams["savefig.*"], which could change the size.
    # No "Software" chunk, so the bytes depend on the data alone.
    # Level 3 zlib costs about 30 ms less than the default 6 for about 6% more bytes.
    canvas.print_png(  # type: ignore[no-untyped-call]
        buffer, metadata={"Software": None}, pil_kwargs={"compress_level": 3}
    )
    return buffer.getvalue()


def _place(
    ax: Axes, size: tuple[int, int], left: float, right: float, top: float, bottom: float
) -> None:
    """Position ``ax`` by its margins in pixels."""
    width, height = size
    inner_w = max(width - left - right, 20.0)
    inner_h = max(height - top - bottom, 20.0)
    ax.set_position((left / width, bottom / height, inner_w / width, inner_h / height))


def _heading(fig: Figure, text: str, font: float, size: tuple[int, int]) -> None:
    width, height = size
    fig.text(
        _PAD / width,
        1 - _PAD / height,
        text,
        ha="left",
        va="top",
        fontsize=font,
        fontweight="bold",
        color=_INK,
        parse_math=False,
    )


def _legend(
    fig: Figure, handles: Sequence[tuple[Artist, str]], columns: int, bottom: float, font: float
) -> None:
    if handles:
        fig.legend(
            [h for h, _ in handles],
            [label for _, label in handles],
            loc="lower center",
            bbox_to_anchor=(0.5, bottom),
            ncols=columns,
            frameon=False,
            fontsize=font,
            borderaxespad=0,
            borderpad=0,
            handlelength=2.2,
            columnspacing=1.6,
        )


def _cell_labels(ax: Axes, cells: Sequence[Sequence[str | None]], font: float) -> PathCollection:
    """All the grid's cell labels as one collection: one draw call instead of hundreds of Texts."""
    glyphs: dict[str | None, Path] = {}
    for key in (*RAG_COLOURS, None):
        path = TextPath((0, 0), _RAG_SHORT[key] if key else "–", size=font)
        box = path.get_extents()
        glyphs[key] = path.transformed(
            Affine2D().translate(-box.x0 - box.width / 2, -box.y0 - box.height / 2)
        )
    ink = {"green": "white", "red": "white", "amber": _INK, "grey": _INK, None: _EMPTY_INK}
    flat = [(r, c, cell) for r, row in enumerate(cells) for c, cell in enumerate(row)]
    return PathCollection(
        [glyphs[cell] for _, _, cell in flat],
        offsets=[(c + 0.5, r + 0.5) for r, c, _ in flat],
        offset_transform=ax.transData,
        transform=Affine2D().scale(DPI / 72),
        facecolors=[ink[cell] for _, _, cell in flat],
        edgecolors="none",
        zorder=3,
        # Snapping would round the thin dash to zero height in some rows.
        snap=False,
    )


def _marker(
    face: str, edge_colour: str, style: _Style, edge: float = 1.4, scale: float = 1.0
) -> Line2D:
    return Line2D(
        [],
        [],
        linestyle="none",
        marker="o",
        markersize=style.marker * scale,
        markerfacecolor=face,
        markeredgecolor=edge_colour,
        markeredgewidth=edge,
    )


def _format_tick(value: float, unit: str) -> str:
    text = f"{value + 0.0:,.2f}".rstrip("0").rstrip(".")
    return f"{text}%" if unit == "percent" else text


def _format_value(value: float, unit: str) -> str:
    """The latest-value label: one decimal at most, with the unit where it helps."""
    text = f"{value + 0.0:,.1f}".removesuffix(".0")
    if unit == "percent":
        return f"{text}%"
    if unit == "days":
        return f"{text} day" if text == "1" else f"{text} days"
    return text


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _finite_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Start and stop indexes of each unbroken run of True."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _steps(values: Sequence[float | None], offset: int) -> tuple[np.ndarray, np.ndarray]:
    """A step line holding each value across its period's width, broken where values are None.

    Neighbouring values join halfway between periods, where a new contract year's target starts.
    """
    xs: list[float] = []
    ys: list[float] = []
    for i, value in enumerate(values, start=offset):
        if value is None:
            xs.append(math.nan)
            ys.append(math.nan)
        else:
            xs += [i - 0.5, i + 0.5]
            ys += [value, value]
    return np.array(xs), np.array(ys)


def _fit_labels(
    labels: Sequence[str], renderer: RendererAgg, slot_px: float, font: float, thin: bool = True
) -> list[str]:
    """Period labels that fit their slots: split onto two lines, then (if ``thin``) keep every
    k-th. The latest period always keeps its label, because it is the one people ask about.
    """

    def step_for(texts: Sequence[str]) -> int:
        lines = [line for s in texts for line in s.split("\n")]
        widest = max((_text_px(renderer, s, font)[0] for s in _longest(lines)), default=0.0)
        return max(1, math.ceil((widest + 8) / max(slot_px, 1.0)))

    fitted, step = list(labels), step_for(labels)
    if step > 1 and any(" " in s for s in fitted):
        # Two lines only when that shows more labels than one line does; else keep it short.
        split = [s.replace(" ", "\n", 1) for s in fitted]
        split_step = step_for(split)
        if split_step < step or not thin:
            fitted, step = split, split_step
    keep = set(range(len(fitted) - 1, -1, -step if thin else -1))
    return [s if i in keep else "" for i, s in enumerate(fitted)]


def _legend_columns(
    renderer: RendererAgg, labels: Sequence[str], font: float, width_px: float
) -> int:
    """The most legend columns that fit ``width_px``."""
    em = font * DPI / 72
    # Each entry is its handle (2.2 em), a gap (0.8 em) and its text; columns are 1.6 em apart.
    widths = [_text_px(renderer, s, font)[0] + 3.0 * em for s in labels]
    for columns in range(len(labels), 1, -1):
        # Split the way matplotlib's Legend does (np.array_split), so the widths match.
        used = sum(float(max(part)) for part in np.array_split(widths, columns) if len(part))
        if used + (columns - 1) * 1.6 * em <= width_px - 2 * _PAD:
            return columns
    return 1


def _wrap(text: str, renderer: RendererAgg, font: float, width_px: float, bold: bool) -> str:
    """Wrap a title to at most two lines of ``width_px``, ending in an ellipsis if cut."""
    # 5% spare, because a line of wide letters runs over the average.
    char_px = _text_px(renderer, text, font, bold)[0] / max(len(text), 1) * 1.05
    wrapped = textwrap.wrap(
        text, width=max(10, int(width_px / max(char_px, 1.0))), max_lines=2, placeholder=" …"
    )
    return "\n".join(wrapped)


def _truncate(text: str, limit: int) -> str:
    """Shorten a KPI name at a word boundary, keeping its start, where codes usually are."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–·") + "…"


def _longest(texts: Sequence[str], count: int = 3) -> list[str]:
    """The few longest strings: measuring those finds the widest without measuring them all."""
    return sorted(set(texts), key=len, reverse=True)[:count]


def _text_px(
    renderer: RendererAgg, text: str, font: float, bold: bool = False
) -> tuple[float, float]:
    prop = FontProperties(size=font, weight="bold" if bold else "normal")
    measure = renderer.get_text_width_height_descent
    width, height, _descent = measure(text, prop, ismath=False)  # type: ignore[no-untyped-call]
    return float(width), float(height)


def _line_px(font: float) -> float:
    return font * DPI / 72 * 1.2
