"""The bounded XLSX reader: ordinary returns read back exactly, hostile files are refused cheaply.

Every file is generated here. Attack files are built by hand with zipfile (or, for the
decompression bomb, with raw deflate blocks) and each refusal is timed and its memory measured.
"""

from __future__ import annotations

import base64
import io
import random
import resource
import struct
import time
import tracemalloc
import zipfile
import zlib
from datetime import date, datetime, timedelta
from datetime import time as clock

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from kpibot.files import xlsx
from kpibot.files.xlsx import XlsxError, XlsxLimits, read_xlsx

MB = 1024 * 1024
# CPU seconds this process spends (not wall time, which other processes on a busy machine
# stretch); generous: the refusals below take milliseconds to a few hundred.
SECONDS = 1.0
MEMORY = 100 * MB

MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = b"http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    b'<Override PartName="/xl/styles.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    b"</Types>"
)
ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' + PKG + b'">'
    b'<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats.org'
    b'/officeDocument/2006/relationships/officeDocument"/></Relationships>'
)
WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="' + MAIN + b'" xmlns:r="' + REL + b'">'
    b'<sheets><sheet name="Return" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' + PKG + b'">'
    b'<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="' + REL + b'/worksheet"/>'
    b'<Relationship Id="rId2" Target="sharedStrings.xml" Type="' + REL + b'/sharedStrings"/>'
    b'<Relationship Id="rId3" Target="styles.xml" Type="' + REL + b'/styles"/>'
    b"</Relationships>"
)
STYLES = (
    b'<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="' + MAIN + b'">'
    b'<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/></numFmts>'
    b'<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="46"/></cellXfs>'
    b"</styleSheet>"
)
SHEET_PATH = "xl/worksheets/sheet1.xml"
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>"
)


def sheet(rows: bytes, *, head: bytes = b"", tail: bytes = b"", prolog: bytes = b"") -> bytes:
    return (
        (prolog or b'<?xml version="1.0" encoding="UTF-8"?>')
        + b'<worksheet xmlns="'
        + MAIN
        + b'">'
        + head
        + b"<sheetData>"
        + rows
        + b"</sheetData>"
        + tail
        + b"</worksheet>"
    )


def inline(ref: str, text: str) -> bytes:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


def book(
    sheet_xml: bytes,
    *,
    strings: bytes | None = None,
    styles: bytes | None = STYLES,
    workbook: bytes = WORKBOOK,
    extra: dict[str, bytes] | None = None,
    method: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A minimal workbook the way Excel lays it out, with the given parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        if styles is not None:
            archive.writestr("xl/styles.xml", styles)
        if strings is not None:
            archive.writestr("xl/sharedStrings.xml", strings)
        archive.writestr(SHEET_PATH, sheet_xml, compress_type=method)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def attempt(data: bytes, limits: XlsxLimits | None) -> object:
    try:
        return read_xlsx(data, "return.xlsx", limits or XlsxLimits())
    except XlsxError as exc:
        return exc


def measured(data: bytes, limits: XlsxLimits | None = None):
    """Read ``data`` twice: timed, then under tracemalloc (which slows Python code severalfold).

    Returns (sheet or error, seconds, peak traced bytes, growth of the process's peak RSS); the
    RSS figure also sees what expat and zlib allocate in C, which tracemalloc does not.
    """
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.process_time()
    outcome = attempt(data, limits)
    seconds = time.process_time() - started
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    tracemalloc.start()
    try:
        traced = attempt(data, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(traced) is type(outcome)
    return outcome, seconds, peak, rss_growth


def refused(data: bytes, limits: XlsxLimits | None = None) -> XlsxError:
    """The refusal for ``data``, asserting it came within the time and memory bounds."""
    outcome, seconds, peak, rss_growth = measured(data, limits)
    assert isinstance(outcome, XlsxError), f"not refused: {outcome!r}"[:300]
    assert seconds < SECONDS, f"refused in {seconds:.2f} s: {outcome.reason}"
    assert peak < MEMORY, f"refusal peaked at {peak / MB:.0f} MB: {outcome.reason}"
    assert rss_growth < MEMORY, f"resident memory grew {rss_growth / MB:.0f} MB"
    assert len(outcome.reason) < 250 and "\n" not in outcome.reason
    return outcome


def expected_by_openpyxl(data: bytes) -> list[tuple[int, list[object]]]:
    """What openpyxl's full reader gives, in XlsxSheet's shape: the reference for values."""
    ws = openpyxl.load_workbook(io.BytesIO(data), data_only=True).worksheets[0]
    rows = []
    for number, raw in enumerate(ws.iter_rows(values_only=True), start=1):
        values = [None if v == "" else v for v in raw]
        while values and values[-1] is None:
            values.pop()
        if values:
            rows.append((number, values))
    return rows


# -- ordinary returns --------------------------------------------------------------------------


def test_a_normal_return_reads_back_exactly() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Monitoring return 2019/20 Q1"])
    ws.merge_cells("A1:D1")
    ws.append(["KPI", "Period", "Value", "Due", "Met", "Time", "Took"])
    ws.append(
        ["1a", "2019/20 Q1", 45, datetime(2019, 7, 1), True, clock(9, 30), timedelta(hours=36)]
    )
    ws.append(["1b", None, 3.25, date(2019, 7, 15), False])
    ws.append([])
    ws.append(
        ["2a", "2019/20 Q2", -7, datetime(2019, 10, 1, 9, 30), None, None, None, "Café £5 – ok"]
    )
    ws["D4"].number_format = "dd/mm/yyyy"
    buffer = io.BytesIO()
    wb.save(buffer)
    data = buffer.getvalue()

    result = read_xlsx(data, "return.xlsx")

    assert result.rows == [
        (1, ["Monitoring return 2019/20 Q1"]),
        (2, ["KPI", "Period", "Value", "Due", "Met", "Time", "Took"]),
        (
            3,
            ["1a", "2019/20 Q1", 45, datetime(2019, 7, 1), True, clock(9, 30), timedelta(hours=36)],
        ),
        (4, ["1b", None, 3.25, datetime(2019, 7, 15), False]),
        (
            6,
            [
                "2a",
                "2019/20 Q2",
                -7,
                datetime(2019, 10, 1, 9, 30),
                None,
                None,
                None,
                "Café £5 – ok",
            ],
        ),
    ]
    assert result.merged == [(1, 1, 1, 4, "A1:D1")]
    assert result.rows == expected_by_openpyxl(data)


def test_1904_date_system_is_honoured() -> None:
    wb = openpyxl.Workbook()
    wb.epoch = CALENDAR_MAC_1904
    wb.active.append(["Due", datetime(2020, 3, 31)])
    buffer = io.BytesIO()
    wb.save(buffer)
    assert read_xlsx(buffer.getvalue(), "mac.xlsx").rows == [(1, ["Due", datetime(2020, 3, 31)])]


@pytest.mark.filterwarnings("ignore:Workbook contains no default style")
def test_hand_written_parts_read_as_openpyxl_reads_them() -> None:
    """Inline and rich strings, phonetic runs, implicit references, errors, booleans, ISO dates,
    styles with date formats and a single-cell merge: the same values as openpyxl's reader."""
    strings = (
        b'<sst xmlns="' + MAIN + b'"><si><t>KPI</t></si>'
        b"<si><r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r>"
        b'<rPh sb="0" eb="4"><t>ignored</t></rPh></si>'
        b"<si><t/></si></sst>"
    )
    rows = (
        b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        b'<row r="3"><c t="inlineStr"><is><r><t>a</t></r><r><t>b</t></r></is></c>'
        b'<c t="b"><v>1</v></c><c t="e"><v>#N/A</v></c><c t="str"><f>A1</f><v>KPI</v></c></row>'
        b'<row><c r="A4" s="1"><v>43647</v></c><c r="B4" s="2"><v>1.5</v></c>'
        b'<c r="C4" t="d"><v>2019-07-01T10:00:00</v></c><c r="E4" s="1"/><c r="F4" t="s"><v>2</v></c>'
        b"</row>"
        b'<row r="5" s="1" customFormat="1"><c r="A5" s="1"/></row>'
        b'<row r="6"><c r="C6"><v>1E3</v></c><c r="D6"><v>12</v></c></row>'
    )
    data = book(
        sheet(rows, tail=b'<mergeCells><mergeCell ref="C6"/></mergeCells>'), strings=strings
    )

    result = read_xlsx(data, "hand.xlsx")

    assert result.rows == [
        (1, ["KPI", "rich text"]),
        (3, ["ab", True, "#N/A", "KPI"]),
        (4, [datetime(2019, 7, 1), timedelta(hours=36), datetime(2019, 7, 1, 10)]),
        (6, [None, None, 1000.0, 12]),
    ]
    assert result.merged == [(6, 3, 6, 3, "C6")]
    assert result.rows == expected_by_openpyxl(data)


cell_values = st.one_of(
    st.none(),
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\n\t"),
        max_size=20,
    ).filter(lambda s: not s.startswith("=")),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(2100, 1, 1)),
)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(cell_values, max_size=6), min_size=1, max_size=6))
def test_any_small_table_reads_as_openpyxl_reads_it(table: list[list[object]]) -> None:
    wb = openpyxl.Workbook()
    for values in table:
        wb.active.append(values)
    buffer = io.BytesIO()
    wb.save(buffer)
    data = buffer.getvalue()
    assert read_xlsx(data, "any.xlsx").rows == expected_by_openpyxl(data)


# -- the decompression bomb --------------------------------------------------------------------


def deflate_pieces(*pieces: tuple[bytes, int]) -> tuple[bytes, int, int]:
    """Raw deflate data for each ``(bytes, times)`` piece laid end to end.

    Each piece is compressed once and ended with a full flush, so it refers to nothing before
    it: copies can be concatenated, and a gigabyte costs one megabyte of compression work.
    Returns (deflate data, CRC-32 of the expansion, expanded size).
    """
    out, crc, size = [], 0, 0
    for content, times in pieces:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        out.append((compressor.compress(content) + compressor.flush(zlib.Z_FULL_FLUSH)) * times)
        for _ in range(times):
            crc = zlib.crc32(content, crc)
        size += len(content) * times
    out.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush())  # the final, empty block
    return b"".join(out), crc, size


def raw_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip from already-deflated members ``(name, deflate data, crc, declared size)``."""
    body, directory = bytearray(), bytearray()
    for name, payload, crc, size in members:
        encoded, offset = name.encode(), len(body)
        common = (zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(payload), size, len(encoded))
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *common, 0) + encoded + payload
        directory += (
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *common, 0, 0, 0, 0, 0, offset)
            + encoded
        )
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0
    )
    return bytes(body + directory + end)


def deflated(name: str, content: bytes) -> tuple[str, bytes, int, int]:
    payload, crc, size = deflate_pieces((content, 1))
    return name, payload, crc, size


BOMB_ROWS = b'<row><c s="1"/></row>' * 50_000  # 1 MB of rows that number themselves


@pytest.fixture(scope="module")
def gigabyte_sheet() -> tuple[bytes, int, int]:
    head = sheet(b"")[: -len(b"</sheetData></worksheet>")]
    return deflate_pieces((head, 1), (BOMB_ROWS, 1024), (b"</sheetData></worksheet>", 1))


def raw_book(sheet_member: tuple[bytes, int, int], declared: int | None = None) -> bytes:
    payload, crc, size = sheet_member
    return raw_zip(
        [
            deflated("[Content_Types].xml", CONTENT_TYPES),
            deflated("_rels/.rels", ROOT_RELS),
            deflated("xl/workbook.xml", WORKBOOK),
            deflated("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
            (SHEET_PATH, payload, crc, size if declared is None else declared),
        ]
    )


def test_a_gigabyte_sheet_is_refused_from_the_zip_directory(gigabyte_sheet) -> None:
    data = raw_book(gigabyte_sheet)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(SHEET_PATH)
    assert len(data) < 5 * MB and info.file_size > 1000 * MB  # a real bomb, and a valid zip
    with zipfile.ZipFile(io.BytesIO(data)).open(SHEET_PATH) as stream:
        assert stream.read(2 * MB).count(b"<row>") > 90_000

    outcome, seconds, peak, rss_growth = measured(data)

    print(
        f"\nbomb: {len(data) / MB:.1f} MB → {info.file_size / MB:,.0f} MB; refused in "
        f"{seconds * 1000:.1f} ms, traced peak {peak / 1024:.0f} kB, RSS growth {rss_growth / MB:.1f} MB"
    )
    assert isinstance(outcome, XlsxError)
    assert outcome.reason == (
        "the workbook expands to more than 50 MB when unzipped (a return is normally a few kB); "
        "save it again as a plain .xlsx or send a CSV"
    )
    assert outcome.line is None
    assert seconds < SECONDS and peak < MEMORY and rss_growth < MEMORY


def test_a_bomb_that_lies_about_its_size_stops_at_the_size_it_declared(gigabyte_sheet) -> None:
    # zipfile inflates no more than the declared size and then fails the CRC check
    error = refused(raw_book(gigabyte_sheet, declared=MB))
    assert error.reason == xlsx.DAMAGED


def test_a_part_that_expands_a_thousandfold_is_refused() -> None:
    rows = b'<row s="1" customFormat="1"><c s="1"/><c s="1"/><c s="1"/></row>' * 100_000
    error = refused(book(sheet(rows)))
    assert error.reason == (
        "part of the workbook expands more than 100-fold when unzipped, which a normal return "
        "never does; save it again as a plain .xlsx or send a CSV"
    )


CELLS_REFUSAL = (
    "the sheet has more than 500,000 cells and rows, counting formatted empty ones; select the "
    "unused rows and columns, choose Clear All, and save it again"
)


@pytest.mark.parametrize(
    ("row", "times"),
    [
        pytest.param((b"<row>" + b'<c s="1"/>' * 100 + b"</row>") * 100, 200, id="2M-empty-cells"),
        pytest.param(b'<row s="1" customFormat="1"/>' * 1024, 1024, id="1M-empty-rows"),
    ],
)
def test_millions_of_formatted_empty_cells_are_counted_before_parsing(row, times) -> None:
    head, tail = sheet(b"").split(b"</sheetData>")
    data = raw_book(deflate_pieces((head, 1), (row, times), (b"</sheetData>" + tail, 1)))
    # The ratio check is switched off so that the count has to stop these.
    error = refused(data, XlsxLimits(max_ratio=10**9))
    assert (error.reason, error.line) == (CELLS_REFUSAL, None)


JUNK = b"<a/>" * 2_600_000  # elements no part needs, each costing a parser callback


@pytest.mark.parametrize("where", ["sheet", "styles"])
def test_millions_of_tags_of_any_kind_are_counted_before_parsing(where: str) -> None:
    if where == "sheet":
        data = book(sheet(b"", tail=JUNK))
    else:
        data = book(sheet(b""), styles=STYLES.replace(b"</styleSheet>", JUNK + b"</styleSheet>"))
    error = refused(data, XlsxLimits(max_ratio=10**9))
    assert error.reason == (
        "the workbook is too complex to read (more than 2,500,000 XML tags, where a return has a "
        "few thousand); copy the return into a new workbook or send a CSV"
    )


def test_a_sheet_with_prefixed_tags_is_read_and_counted_exactly() -> None:
    """Tags with a namespace prefix escape the fast pre-count; the parser's count still holds."""
    prefixed = (
        sheet(b"".join(b"<x:row><x:c><x:v>%d</x:v></x:c><x:c/></x:row>" % i for i in range(1, 6)))
        .replace(b"<worksheet xmlns=", b"<x:worksheet xmlns:x=")
        .replace(b"</worksheet>", b"</x:worksheet>")
        .replace(b"sheetData>", b"x:sheetData>")
    )
    assert read_xlsx(book(prefixed), "x.xlsx").rows == [(i, [i]) for i in range(1, 6)]
    error = refused(book(prefixed), XlsxLimits(max_cells=10))
    assert (error.reason.split(";")[0], error.line) == (
        "the sheet has more than 10 cells and rows, counting formatted empty ones",
        4,
    )


def test_a_formatted_cell_at_column_xfd_does_not_count_as_data() -> None:
    rows = b'<row r="1"><c r="A1"><v>1</v></c><c r="XFD1" s="1"/></row>'
    assert read_xlsx(book(sheet(rows)), "styled.xlsx").rows == [(1, [1])]


# -- lying dimensions, too many rows or columns, long text ---------------------------------------


def test_a_dimension_claiming_the_whole_sheet_is_ignored() -> None:
    rows = b'<row r="1">' + inline("A1", "KPI") + b'</row><row r="2"><c r="B2"><v>7</v></c></row>'
    data = book(sheet(rows, head=b'<dimension ref="A1:XFD1048576"/>'))
    outcome, seconds, peak, _ = measured(data)
    assert outcome.rows == [(1, ["KPI"]), (2, [None, 7])]
    assert seconds < SECONDS and peak < MEMORY


def numbered_rows(count: int) -> bytes:
    return b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i) for i in range(1, count + 1)
    )


def test_a_dimension_claiming_one_cell_does_not_hide_500_columns() -> None:
    cells = b"".join(b"<c><v>%d</v></c>" % i for i in range(500))
    data = book(sheet(b"<row>" + cells + b"</row>", head=b'<dimension ref="A1"/>'))
    assert refused(data).reason.startswith("cell GS1 is beyond the 200 columns")


def test_30000_rows_are_refused_at_the_first_row_over_the_limit() -> None:
    error = refused(book(sheet(numbered_rows(30_000))))
    assert error.reason == (
        "the sheet has more than 20,000 rows; a monitoring return should have one row per KPI "
        "and period, so split it"
    )
    assert error.line == 20_001


def test_500_columns_are_refused_naming_the_first_cell_beyond_the_limit() -> None:
    cells = b"".join(b"<c><v>%d</v></c>" % i for i in range(500))
    error = refused(book(sheet(b"<row>" + cells + b"</row>")))
    assert error.reason == (
        "cell GS1 is beyond the 200 columns a return may use; delete the columns to the right "
        "of your data and send it again"
    )
    assert error.line == 1


MEGABYTE_TEXT = base64.b64encode(random.Random(1).randbytes(750_000)).decode()
TEXT_REFUSAL = (
    "the text in cell B2 is longer than 10,000 characters; shorten it and send the return again"
)


def test_a_megabyte_inline_string_is_refused_naming_its_cell() -> None:
    rows = b'<row r="1">' + inline("A1", "KPI") + b'</row><row r="2">' + inline("B2", MEGABYTE_TEXT)
    error = refused(book(sheet(rows + b"</row>")))
    assert (error.reason, error.line) == (TEXT_REFUSAL, 2)


def test_a_megabyte_shared_string_is_refused_naming_the_cell_that_uses_it() -> None:
    strings = (
        f'<sst xmlns="{MAIN.decode()}"><si><t>KPI</t></si><si><t>{MEGABYTE_TEXT}</t></si></sst>'
    )
    rows = b'<row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="B2" t="s"><v>1</v></c></row>'
    error = refused(book(sheet(rows), strings=strings.encode()))
    assert (error.reason, error.line) == (TEXT_REFUSAL, 2)


def test_a_long_shared_string_that_no_cell_uses_is_harmless() -> None:
    strings = (
        f'<sst xmlns="{MAIN.decode()}"><si><t>KPI</t></si><si><t>{MEGABYTE_TEXT}</t></si></sst>'
    )
    data = book(sheet(b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), strings=strings.encode())
    assert read_xlsx(data, "return.xlsx").rows == [(1, ["KPI"])]


# -- XML tricks --------------------------------------------------------------------------------

ENTITY_REFUSAL = (
    "the workbook contains XML entity declarations, which Excel never writes; save it again from "
    "Excel as .xlsx or send a CSV"
)


def test_billion_laughs_in_the_shared_strings_is_refused() -> None:
    strings = LAUGHS + b'<sst xmlns="' + MAIN + b'"><si><t>&lol9;</t></si></sst>'
    data = book(sheet(b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), strings=strings)
    assert refused(data).reason == ENTITY_REFUSAL


def test_billion_laughs_in_the_sheet_is_refused() -> None:
    data = book(sheet(b'<row r="1">' + inline("A1", "&lol9;") + b"</row>", prolog=LAUGHS))
    assert refused(data).reason == ENTITY_REFUSAL


def test_billion_laughs_in_the_workbook_part_is_refused() -> None:
    data = book(sheet(b""), workbook=LAUGHS + WORKBOOK.split(b"?>", 1)[1])
    assert refused(data).reason == ENTITY_REFUSAL


def test_xml_nested_deeper_than_any_spreadsheet_is_refused() -> None:
    deep = b"<x:a xmlns:x='urn:x'>" * 1000 + b"</x:a>" * 1000
    error = refused(book(sheet(b'<row r="1">' + inline("A1", "KPI") + b"</row>", tail=deep)))
    assert error.reason == xlsx.DAMAGED


def test_rows_out_of_order_are_refused_as_damaged() -> None:
    rows = b'<row r="5"><c><v>1</v></c></row><row r="2"><c><v>2</v></c></row>'
    error = refused(book(sheet(rows)))
    assert (error.reason, error.line) == (xlsx.DAMAGED, 5)


def test_a_number_excel_cannot_read_is_refused_naming_its_cell() -> None:
    error = refused(book(sheet(b'<row r="3"><c r="C3"><v>12,5</v></c></row>')))
    assert (error.reason, error.line) == (
        "cell C3 holds a value Excel cannot read; type it again and send the return again",
        3,
    )


def test_too_many_merged_ranges_are_refused() -> None:
    merges = b"".join(b'<mergeCell ref="A%d:B%d"/>' % (i, i) for i in range(1, 12))
    data = book(sheet(b"", tail=b"<mergeCells>" + merges + b"</mergeCells>"))
    error = refused(data, XlsxLimits(max_merged=10))
    assert (
        error.reason
        == "the sheet has more than 10 merged ranges; unmerge the cells and send it again"
    )


def test_too_many_shared_strings_are_refused() -> None:
    strings = b'<sst xmlns="' + MAIN + b'">' + b"<si><t>x</t></si>" * 11 + b"</sst>"
    error = refused(book(sheet(b""), strings=strings), XlsxLimits(max_shared_strings=10))
    assert error.reason.startswith("the workbook holds more than 10 different texts;")


# -- not a workbook at all ---------------------------------------------------------------------


def test_a_file_that_is_not_a_zip_is_refused() -> None:
    error = refused(b"KPI,Period,Value\n1a,2019/20 Q1,45\n" * 100)
    assert error.reason == (
        "this is not a readable .xlsx workbook; save it from Excel as 'Excel Workbook (.xlsx)' "
        "or send a CSV"
    )


def test_an_empty_file_is_refused() -> None:
    assert refused(b"").reason == xlsx.EMPTY


def test_a_file_over_5_mb_is_refused_before_it_is_opened() -> None:
    error = refused(b"PK" + bytes(6 * MB))
    assert error.reason == "the file is 6.0 MB; the limit is 5 MB, so split it"


def test_an_old_xls_and_a_password_protected_xlsx_are_told_apart() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096)
    assert refused(ole).reason == xlsx.OLD_XLS
    encrypted = ole + "EncryptedPackage".encode("utf-16-le") + bytes(512)
    assert refused(encrypted).reason.startswith("the workbook is password-protected;")


def test_a_zip_encrypted_member_is_refused() -> None:
    data = bytearray(book(sheet(b"")))
    entry = data.rfind(SHEET_PATH.encode()) - 46  # the sheet's central directory entry
    assert data[entry : entry + 4] == b"PK\x01\x02"
    data[entry + 8] |= 0x1  # general purpose flag bit 0: encrypted
    assert refused(bytes(data)).reason.startswith("the workbook is password-protected;")


def test_a_zip_without_a_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("return.csv", "KPI,Period,Value\n")
    assert refused(buffer.getvalue()).reason == (
        "this zip file holds no Excel workbook; save the return from Excel as .xlsx or send a CSV"
    )


def test_a_word_document_is_not_a_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("_rels/.rels", ROOT_RELS.replace(b"xl/workbook.xml", b"word/document.xml"))
        archive.writestr("word/document.xml", b'<w:document xmlns:w="urn:w"/>')
    assert refused(buffer.getvalue()).reason == xlsx.NO_WORKBOOK


def test_a_zip_of_thousands_of_parts_is_refused_before_its_directory_is_read() -> None:
    extra = {f"xl/media/image{i}.png": b"" for i in range(600)}
    error = refused(book(sheet(b""), extra=extra))
    assert error.reason.startswith("the workbook holds more than 500 parts")


def test_a_compression_method_excel_never_uses_is_refused() -> None:
    error = refused(book(sheet(b""), method=zipfile.ZIP_BZIP2))
    assert error.reason == xlsx.COMPRESSION


def test_a_workbook_without_a_worksheet_is_refused() -> None:
    data = book(sheet(b""), workbook=WORKBOOK.replace(b"<sheet ", b"<chartsheet "))
    assert refused(data).reason == xlsx.NO_SHEET


def saved(rows: list[list[object]], formats: dict[str, str] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    for values in rows:
        wb.active.append(values)
    for ref, code in (formats or {}).items():
        wb.active[ref].number_format = code
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("stored", "code", "shown"),
    [
        (0.87, "0%", "87%"),
        (0.875, "0.0%", "87.5%"),
        (0.29, "0.00%", "29%"),  # 0.29 × 100 is 28.999999999999996 in floats
        (1, "0%", "100%"),
        (0.30000000000000004, "0%", "30%"),  # Excel keeps 15 significant digits
        (-0.05, "0.0%;[Red]-0.0%", "-5%"),
    ],
)
def test_a_percentage_cell_reads_as_the_percentage_excel_shows(stored, code, shown) -> None:
    # openpyxl gives 0.87 for a cell showing 87%, which a return would read as 0.87%: a red.
    data = saved([["kpi", "period", "value"], ["A", "2019/20 Q1", stored]], {"C2": code})
    assert read_xlsx(data, "r.xlsx").rows[1] == (2, ["A", "2019/20 Q1", shown])


@pytest.mark.parametrize("code", ['0" % met"', "0\\%", "General", "0.00", "[$%-809]0"])
def test_a_percent_sign_that_only_labels_the_number_leaves_it_alone(code: str) -> None:
    data = saved([["value"], [87]], {"A2": code})
    assert read_xlsx(data, "r.xlsx").rows[1] == (2, [87])


@pytest.mark.parametrize("formula", ["=1+1", '=HYPERLINK("https://example.org","A")'])
def test_a_formula_with_no_saved_result_is_refused_naming_its_cell(formula: str) -> None:
    # A program (openpyxl here) writes formulas without results; read as empty, the figure
    # would silently become 'missing'.
    data = saved([["kpi", "period", "value"], ["A", "2019/20 Q1", formula]])
    error = refused(data)
    assert error.line == 2 and error.reason.startswith("cell C2 holds a formula with no saved")


def test_a_formula_saved_with_its_result_reads_as_the_result() -> None:
    rows = (
        b'<row r="1"><c r="A1"><f>40+47</f><v>87</v></c>'
        b'<c r="B1" t="str"><f>IF(1,"","x")</f><v></v></c>'
        b'<c r="C1" t="str"><f>"S"&amp;"11"</f><v>S11</v></c></row>'
    )
    assert read_xlsx(book(sheet(rows)), "r.xlsx").rows == [(1, [87, None, "S11"])]
