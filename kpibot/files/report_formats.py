"""One report, any format: ``render(report, "xlsx")`` picks the renderer.

The model and the CSV writer are in ``kpibot.files.report``; XLSX, PDF and HTML each have their
own module, which this one loads only when that format is asked for.

>>> # render(report, "pdf")[:4] == b"%PDF"
"""

from __future__ import annotations

from kpibot.files.report import FORMATS, Report, render_csv


def render(report: Report, fmt: str) -> bytes:
    """The report in ``fmt`` ("xlsx", "pdf", "html" or "csv") as the bytes of one file."""
    # Loaded here, not at the top, for start-up speed: openpyxl and fpdf2 load only when a
    # report in their format is asked for.
    if fmt == "xlsx":
        from kpibot.files.report_xlsx import render_xlsx

        return render_xlsx(report)
    if fmt == "pdf":
        from kpibot.files.report_pdf import render_pdf

        return render_pdf(report)
    if fmt == "html":
        from kpibot.files.report_html import render_html

        return render_html(report)
    if fmt == "csv":
        return render_csv(report)
    raise ValueError(f"Unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}.")
