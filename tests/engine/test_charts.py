"""Behaviour of kpibot.engine.charts: real PNGs, the right size, the right colours, thread-safe."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from kpibot.engine.charts import (
    PNG_SIGNATURE,
    RAG_COLOURS,
    ChartPoint,
    KpiChartData,
    Rag,
    RagGridData,
    Unit,
    _steps,
    _truncate,
    render_kpi_chart,
    render_rag_grid,
    render_small_multiples,
)

PERIODS = [f"{y}/{(y + 1) % 100:02d} Q{q}" for y in (2018, 2019) for q in (1, 2, 3, 4)]


def decode(png: bytes) -> np.ndarray:
    """The image as an (height, width, 3) array of 0–255 RGB."""
    with Image.open(BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=int)


def count_colour(png: bytes, hex_colour: str, tolerance: int = 10) -> int:
    """Pixels within ``tolerance`` of ``hex_colour`` on every channel."""
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(decode(png) - target).max(axis=2) <= tolerance).sum())


def kpi_chart(
    rags: list[Rag], *, pending_last: bool = False, unit: Unit = "percent"
) -> KpiChartData:
    """A chart with every decoration: stepping target and tolerance, benchmark, critical
    failure and one missing figure, so colour tests cover everything else drawn too."""
    points = []
    for i, (period, rag) in enumerate(zip(PERIODS, rags, strict=False)):
        points.append(
            ChartPoint(
                period,
                None if i == 3 else 80.0 + 2.5 * i,
                rag,
                pending=pending_last and i == len(rags) - 1,
                target=90.0 if i < 4 else 92.0,
                tolerance=85.0 if i < 4 else 87.0,
                benchmark=84.0 + i,
                critical_failure=70.0,
            )
        )
    return KpiChartData(
        "childrens-trust · Assessments completed within 45 days", unit, "bigger", points
    )


def test_chart_is_a_png_of_the_requested_size() -> None:
    png = render_kpi_chart(kpi_chart(["green"] * 8))
    assert png.startswith(PNG_SIGNATURE)
    assert decode(png).shape == (450, 900, 3)
    assert len(png) < 200_000


@pytest.mark.parametrize(("width", "height"), [(600, 300), (333, 217), (1200, 675)])
def test_chart_honours_any_pixel_size(width: int, height: int) -> None:
    assert decode(render_kpi_chart(kpi_chart(["amber"] * 8), width, height)).shape[:2] == (
        height,
        width,
    )


@pytest.mark.parametrize("rag", ["green", "amber", "red"])
def test_only_the_rags_present_are_painted(rag: Rag) -> None:
    png = render_kpi_chart(kpi_chart([rag] * 8))
    for other, colour in RAG_COLOURS.items():
        if other == rag:
            assert count_colour(png, colour) > 300, f"{rag} markers should be painted"
        elif other != "grey":  # antialiased black text passes through grey, so grey is tested apart
            assert count_colour(png, colour) == 0, f"no {other} point, yet {other} pixels found"


def test_every_rag_colour_appears_when_points_have_it() -> None:
    png = render_kpi_chart(
        kpi_chart(["green", "amber", "red", "grey", "grey", "red", "amber", "green"])
    )
    for rag, colour in RAG_COLOURS.items():
        assert count_colour(png, colour) > 100, rag


def test_grey_points_add_grey_pixels() -> None:
    without = count_colour(render_kpi_chart(kpi_chart(["green"] * 8)), RAG_COLOURS["grey"])
    with_grey = count_colour(render_kpi_chart(kpi_chart(["grey"] * 8)), RAG_COLOURS["grey"])
    assert with_grey > without + 500


def test_a_provisional_point_still_shows_its_rag_but_hollow() -> None:
    rags: list[Rag] = ["green"] * 7
    rags.append("red")
    solid = render_kpi_chart(kpi_chart(rags))
    hollow = render_kpi_chart(kpi_chart(rags, pending_last=True))
    assert 0 < count_colour(hollow, RAG_COLOURS["red"]) < count_colour(solid, RAG_COLOURS["red"])


def test_all_missing_values_still_render() -> None:
    points = [ChartPoint(p, None, "grey", target=120.0) for p in PERIODS]
    png = render_kpi_chart(
        KpiChartData("one-you-lifestyle · Completers", "count", "bigger", points)
    )
    assert decode(png).shape == (450, 900, 3)
    for rag in ("green", "amber", "red"):
        assert count_colour(png, RAG_COLOURS[rag]) == 0


def test_nan_counts_as_missing_and_no_points_render() -> None:
    nan_chart = KpiChartData(
        "x · y", "rate", "smaller", [ChartPoint("2019-07", float("nan"), "red")]
    )
    assert count_colour(render_kpi_chart(nan_chart), RAG_COLOURS["red"]) == 0
    assert decode(render_kpi_chart(KpiChartData("x · y", "days", "smaller", []))).shape == (
        450,
        900,
        3,
    )


def test_target_steps_at_the_contract_year_boundary() -> None:
    xs, ys = _steps([90.0, 90.0, 95.0, None, 95.0], offset=0)
    # 0.5 wide either side of each period; the change to 95 happens halfway between periods 1 and 2.
    assert list(xs[:6]) == [-0.5, 0.5, 0.5, 1.5, 1.5, 2.5]
    assert list(ys[:6]) == [90.0, 90.0, 90.0, 90.0, 95.0, 95.0]
    assert np.isnan(xs[6]) and np.isnan(ys[6])  # the gap breaks the line


def test_long_kpi_names_are_cut_at_a_word_with_an_ellipsis() -> None:
    name = "CT12 Percentage of care leavers in education, employment or training at 19-21"
    short = _truncate(name, 40)
    assert len(short) <= 40 and short.endswith("…") and short.startswith("CT12 Percentage")
    assert name.startswith(short[:-1].rstrip())
    assert _truncate("CT01 Short name", 40) == "CT01 Short name"


def forty_by_eight() -> RagGridData:
    cycle: list[Rag | None] = ["green", "green", "amber", "red", "grey", None, "green", "amber"]
    rows = [
        f"CT{i:02d} Percentage of children seen within the statutory timescale {i}"
        for i in range(40)
    ]
    cells = [[cycle[(r + c) % len(cycle)] for c in range(8)] for r in range(40)]
    return RagGridData("childrens-trust · Quarterly RAG summary", rows, PERIODS, cells)


def test_grid_of_40_kpis_by_8_quarters_renders_with_all_colours() -> None:
    png = render_rag_grid(forty_by_eight())
    height, width, _ = decode(png).shape
    assert width == 900 and height > 40 * 20
    for rag, colour in RAG_COLOURS.items():
        assert count_colour(png, colour) > 40 * 200, rag  # many cells of each colour


def test_grid_honours_an_explicit_height_and_rejects_ragged_cells() -> None:
    assert decode(render_rag_grid(forty_by_eight(), 1000, 1200)).shape[:2] == (1200, 1000)
    with pytest.raises(ValueError, match="rows of"):
        RagGridData("x", ["a", "b"], ["Q1"], [["green"]])
    with pytest.raises(ValueError, match="RAG colour"):
        RagGridData("x", ["a"], ["Q1"], [["purple"]])  # type: ignore[list-item]


def test_small_multiples_render_each_panel() -> None:
    charts = [kpi_chart(["red"] * 8), kpi_chart(["amber"] * 8), kpi_chart(["red", "amber"] * 4)]
    png = render_small_multiples(charts, columns=2, title="Reds and ambers")
    height, width, _ = decode(png).shape
    assert width == 1200 and height > 2 * 300
    assert count_colour(png, RAG_COLOURS["red"]) > 500
    assert count_colour(png, RAG_COLOURS["green"]) == 0
    with pytest.raises(ValueError):
        render_small_multiples([])


def test_invalid_inputs_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unit"):
        KpiChartData("x", "furlongs", "bigger", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="polarity"):
        KpiChartData("x", "count", "up", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rag"):
        ChartPoint("2019-07", 1.0, "blue")  # type: ignore[arg-type]


def test_concurrent_rendering_matches_serial_rendering() -> None:
    jobs: list[Callable[[], bytes]] = [
        lambda: render_kpi_chart(kpi_chart(["green", "amber", "red", "grey"] * 2)),
        lambda: render_kpi_chart(kpi_chart(["red"] * 8, pending_last=True), 700, 350),
        lambda: render_rag_grid(forty_by_eight()),
        lambda: render_small_multiples([kpi_chart(["amber"] * 8), kpi_chart(["red"] * 8)]),
    ]
    serial = [job() for job in jobs]
    assert serial == [job() for job in jobs]  # same data, same bytes
    start = threading.Barrier(len(jobs))

    def run(index: int) -> list[bytes]:
        start.wait()  # all four threads draw at the same moment
        return [jobs[index]() for _ in range(3)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        concurrent = list(pool.map(run, range(len(jobs))))
    for index, outputs in enumerate(concurrent):
        assert all(png == serial[index] for png in outputs), f"job {index} differed under threads"


def test_rendering_never_loads_pyplot() -> None:
    code = (
        "import sys\n"
        "from kpibot.engine.charts import ChartPoint, KpiChartData, render_kpi_chart\n"
        "render_kpi_chart(KpiChartData('x · y', 'count', 'bigger', [ChartPoint('Q1', 3, 'red')]))\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
