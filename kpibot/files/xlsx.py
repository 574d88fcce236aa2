"""Read the first worksheet of an uploaded XLSX/XLSM file without letting the file decide the cost.

An .xlsx is a zip of XML parts: a few megabytes can unzip to gigabytes, XML can declare entities
that expand exponentially, and a sheet can claim a million formatted rows. openpyxl trusts all of
that, and its read-only mode still builds each whole row in memory, pads rows to the declared
``<dimension>`` and loads the shared strings and styles without limits. So this reader checks
what the zip directory declares before it inflates anything, then streams the few parts it needs
through expat with its own counters, and stops at the first limit with one sentence a provider can
act on. openpyxl is used only for its value rules (dates, number formats), so values come back as
openpyxl would give them: str, int, float, bool, datetime, date, time or timedelta. Two things
differ, because openpyxl's reading would be a silent misread: a number formatted as a percentage
comes back as the text Excel shows ('87%', not openpyxl's 0.87, which would read as 0.87%), and
a formula with no saved result (a file written by a program, not saved by Excel) is refused
naming its cell rather than read as an empty cell.

>>> import io, openpyxl
>>> book = openpyxl.Workbook()
>>> book.active.append(["KPI", "Period", "Value"])
>>> book.active.append(["1a", "2019/20 Q1", 45])
>>> buffer = io.BytesIO()
>>> book.save(buffer)
>>> read_xlsx(buffer.getvalue(), "return.xlsx").rows
[(1, ['KPI', 'Period', 'Value']), (2, ['1a', '2019/20 Q1', 45])]
>>> try:
...     read_xlsx(b"KPI,Period,Value", "return.xlsx")
... except XlsxError as exc:
...     print(exc.line, exc.reason)  # doctest: +ELLIPSIS
None this is not a readable .xlsx workbook; save it from Excel as ...
"""

from __future__ import annotations

import logging
import math
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context
from io import BytesIO
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.cell import get_column_letter, range_boundaries
from openpyxl.utils.datetime import (
    CALENDAR_MAC_1904,
    CALENDAR_WINDOWS_1900,
    from_excel,
    from_ISO8601,
)

log = logging.getLogger(__name__)

MB = 1024 * 1024

# What a provider reads: one sentence each, saying what is wrong and what to do about it. They
# sit together so the wording stays consistent; the technical detail goes to the log instead.
TOO_BIG = "the file is {size:.1f} MB; the limit is {limit:g} MB, so split it"
EMPTY = "the file is empty; send the monitoring return as .xlsx or CSV"
NOT_XLSX = (
    "this is not a readable .xlsx workbook; save it from Excel as 'Excel Workbook (.xlsx)' "
    "or send a CSV"
)
OLD_XLS = "this is an old .xls workbook; save it as .xlsx or CSV and send it again"
ENCRYPTED = (
    "the workbook is password-protected; remove the password in Excel (File → Info → Protect "
    "Workbook) and send it again"
)
NO_WORKBOOK = (
    "this zip file holds no Excel workbook; save the return from Excel as .xlsx or send a CSV"
)
XLSB = "this is an Excel binary workbook (.xlsb); save it as .xlsx or CSV and send it again"
NO_SHEET = "the workbook has no worksheet; put the return on the first sheet and send it again"
DAMAGED = (
    "the workbook is damaged and cannot be read; open it in Excel, save it again as .xlsx, "
    "or send a CSV"
)
TOO_MANY_PARTS = (
    "the workbook holds more than {limit:,} parts (a return normally has about ten); copy the "
    "return into a new workbook or send a CSV"
)
UNZIPPED = (
    "the workbook expands to more than {limit:g} MB when unzipped (a return is normally a few "
    "kB); save it again as a plain .xlsx or send a CSV"
)
RATIO = (
    "part of the workbook expands more than {limit:,}-fold when unzipped, which a normal return "
    "never does; save it again as a plain .xlsx or send a CSV"
)
COMPRESSION = (
    "the workbook is compressed in a way Excel never uses; save it again from Excel as .xlsx "
    "or send a CSV"
)
ENTITIES = (
    "the workbook contains XML entity declarations, which Excel never writes; save it again "
    "from Excel as .xlsx or send a CSV"
)
ROWS = (
    "the sheet has more than {limit:,} rows; a monitoring return should have one row per KPI "
    "and period, so split it"
)
COLUMNS = (
    "cell {cell} is beyond the {limit:,} columns a return may use; delete the columns to the "
    "right of your data and send it again"
)
CELLS = (
    "the sheet has more than {limit:,} cells and rows, counting formatted empty ones; select "
    "the unused rows and columns, choose Clear All, and save it again"
)
TAGS = (
    "the workbook is too complex to read (more than {limit:,} XML tags, where a return has a "
    "few thousand); copy the return into a new workbook or send a CSV"
)
CELL_TEXT = (
    "the text in cell {cell} is longer than {limit:,} characters; shorten it and send the "
    "return again"
)
BAD_VALUE = "cell {cell} holds a value Excel cannot read; type it again and send the return again"
NO_RESULT = (
    "cell {cell} holds a formula with no saved result (the file was written by a program, not "
    "saved by Excel); open it in Excel and save it, or paste the values, and send it again"
)
TEXTS = (
    "the workbook holds more than {limit:,} different texts; copy the return into a new "
    "workbook or send a CSV"
)
TEXT_BYTES = (
    "the workbook's texts take more than {limit:g} MB; copy the return into a new workbook "
    "or send a CSV"
)
MERGED = "the sheet has more than {limit:,} merged ranges; unmerge the cells and send it again"


@dataclass(frozen=True)
class XlsxLimits:
    """What reading one uploaded workbook may cost; the defaults fit a KPI monitoring return.

    >>> XlsxLimits(max_rows=500).max_rows
    500
    """

    max_file_bytes: int = 5 * MB
    #: Sum of the declared sizes of the parts actually read (sheet, strings, styles, workbook).
    max_unzipped_bytes: int = 50 * MB
    #: Ordinary XML deflates 5–20-fold; a bomb, close to deflate's 1,032-fold ceiling.
    max_ratio: int = 100
    #: Small parts may compress better than ``max_ratio`` (a few repeated tags) without harm.
    ratio_exempt_bytes: int = 1 * MB
    max_members: int = 500
    #: Non-empty rows, the header row included.
    max_rows: int = 20_000
    max_columns: int = 200
    max_cell_chars: int = 10_000
    #: ``<c>`` and ``<row>`` elements, formatted empty ones included, so that formatting cannot
    #: buy parse time: 20,000 rows of 24 columns.
    max_cells: int = 500_000
    #: XML tags in all the parts read, whatever they are: parse time follows this count.
    max_tags: int = 2_500_000
    max_shared_strings: int = 200_000
    max_shared_strings_bytes: int = 20 * MB
    max_merged: int = 10_000


@dataclass(frozen=True)
class XlsxSheet:
    """The first worksheet: non-empty rows and the merged ranges.

    ``rows`` holds ``(sheet row number, values)``, with ``None`` for an empty cell, trailing
    empty cells trimmed and empty rows left out. ``merged`` holds
    ``(min_row, min_col, max_row, max_col, "A1:C2")``.
    """

    rows: list[tuple[int, list[object]]] = field(default_factory=list)
    merged: list[tuple[int, int, int, int, str]] = field(default_factory=list)


class XlsxError(Exception):
    """The workbook is refused: ``reason`` is one sentence for the provider, ``line`` the sheet
    row when there is one, ``detail`` what went wrong technically, for the log only."""

    def __init__(self, reason: str, line: int | None = None, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.detail = detail


def read_xlsx(data: bytes, name: str, limits: XlsxLimits = XlsxLimits()) -> XlsxSheet:
    """Read the first worksheet of ``data`` (an .xlsx or .xlsm) within ``limits``.

    ``name`` is only used in log lines. Raises :class:`XlsxError` for anything unreadable or
    over a limit, never another exception for a bad file.
    """
    try:
        return _Workbook(data, limits).read()
    except XlsxError as exc:
        log.info("refused workbook %r: %s [%s]", name, exc.reason, exc.detail[:200])
        raise
    except (
        zipfile.BadZipFile,  # includes a CRC mismatch, e.g. when a member's size was a lie
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        NotImplementedError,
        RuntimeError,
        expat.ExpatError,
    ) as exc:
        log.warning("unreadable workbook %r", name, exc_info=True)
        raise XlsxError(DAMAGED, None, f"{type(exc).__name__}: {exc}"[:200]) from None


# -- the zip container --------------------------------------------------------------------------

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Office saves a password-protected .xlsx as an OLE2 container with this stream in it.
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_CENTRAL_ENTRY = b"PK\x01\x02"
_CHUNK = 64 * 1024
_ELEMENT_MARKS = (b"<c ", b"<c>", b"<c/", b"<row ", b"<row>", b"<row/")
# Relationship types end the same way in the transitional and strict schemas.
_WORKBOOK_REL = "/officeDocument"
_SHEET_REL = "/worksheet"
_STRINGS_REL = "/sharedStrings"
_STYLES_REL = "/styles"


class _Workbook:
    """One read of one file: the zip, the limits and the bytes inflated so far."""

    def __init__(self, data: bytes, limits: XlsxLimits) -> None:
        self.data = data
        self.limits = limits
        self.unzipped = 0
        self.tags = 0
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.admitted: dict[str, zipfile.ZipInfo] = {}
        self.counted: set[str] = set()
        self.zip = self._open_zip()

    def read(self) -> XlsxSheet:
        book, sheet_path, strings_path, styles_path = self._locate()
        # Everything still to be read is admitted and counted together, before any of it is
        # parsed, so that a bomb in the sheet is refused without first paying for the rest.
        parts = [p for p in (strings_path, styles_path) if p] + [sheet_path]
        for path in parts:
            self._admit(path)
        limit = self.limits.max_shared_strings_bytes
        if strings_path and self.admitted[strings_path].file_size > limit:
            raise XlsxError(TEXT_BYTES.format(limit=limit / MB), detail=strings_path)
        for path in parts:
            self._count_tags(path, sheet=path == sheet_path)
        strings = _StringsPart(self.limits)
        if strings_path:
            self._parse(strings_path, strings)
        styles = _StylesPart()
        if styles_path:
            self._parse(styles_path, styles)
        sheet = _SheetPart(
            self.limits,
            strings.strings,
            styles.date_styles(),
            styles.percent_styles(),
            book.epoch,
        )
        self._parse(sheet_path, sheet)
        return XlsxSheet(sheet.rows, sheet.merged)

    def _locate(self) -> tuple[_BookPart, str, str | None, str | None]:
        """The workbook, and the paths of its first worksheet, shared strings and styles."""
        book_path = self._workbook_path()
        book = _BookPart()
        self._parse(book_path, book)
        if not book.is_workbook:
            raise XlsxError(NO_WORKBOOK, detail=f"{book_path} is not a workbook")
        rels = _BookRelsPart(set(book.sheet_ids))
        base = posixpath.dirname(book_path)
        rels_path = posixpath.join(base, "_rels", posixpath.basename(book_path) + ".rels")
        if self._member(rels_path) is not None:
            self._parse(rels_path, rels)
        sheets = (_resolve(base, rels.sheets.get(rid)) for rid in book.sheet_ids)
        sheet_path = next((path for path in sheets if path and self._member(path)), None)
        if sheet_path is None:
            raise XlsxError(NO_SHEET, detail=f"sheet ids {book.sheet_ids[:5]}")
        # a relationship is the rule; the usual names are the fallback openpyxl relies on
        strings_path = _resolve(base, rels.strings) or "xl/sharedStrings.xml"
        styles_path = _resolve(base, rels.styles) or "xl/styles.xml"
        return (
            book,
            sheet_path,
            strings_path if self._member(strings_path) else None,
            styles_path if self._member(styles_path) else None,
        )

    def _open_zip(self) -> zipfile.ZipFile:
        data, limits = self.data, self.limits
        if len(data) > limits.max_file_bytes:
            size = len(data) / MB
            raise XlsxError(TOO_BIG.format(size=size, limit=limits.max_file_bytes / MB))
        if not data.strip():
            raise XlsxError(EMPTY)
        if data.startswith(_OLE2_MAGIC):
            raise XlsxError(ENCRYPTED if _ENCRYPTED_PACKAGE in data else OLD_XLS)
        # Every directory entry starts with this signature, so the count is an upper bound on
        # the ZipInfo objects zipfile would build; checking it first keeps a directory of
        # 100,000 tiny entries from costing tens of MB before the member count can be seen.
        if data.count(_CENTRAL_ENTRY) > limits.max_members:
            raise XlsxError(TOO_MANY_PARTS.format(limit=limits.max_members))
        try:
            archive = zipfile.ZipFile(BytesIO(data))
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise XlsxError(NOT_XLSX, detail=str(exc)) from None
        if len(archive.infolist()) > limits.max_members:
            raise XlsxError(TOO_MANY_PARTS.format(limit=limits.max_members))
        # OPC part names are case-insensitive, zip names are not.
        self.members = {info.filename.lower(): info for info in archive.infolist()}
        return archive

    def _member(self, path: str) -> zipfile.ZipInfo | None:
        return self.members.get(path.lower())

    def _workbook_path(self) -> str:
        path = None
        if self._member("_rels/.rels") is not None:
            root = _RootRelsPart()
            self._parse("_rels/.rels", root)
            path = _resolve("", root.workbook)
        if path is None and self._member("xl/workbook.xml") is not None:
            path = "xl/workbook.xml"
        if path is None or self._member(path) is None:
            raise XlsxError(NO_WORKBOOK, detail=f"office document {path!r}")
        if path.lower().endswith(".bin"):
            raise XlsxError(XLSB)
        return path

    def _admit(self, path: str) -> zipfile.ZipInfo:
        """Check what the directory declares for a part before inflating any of it.

        zipfile never returns more than the declared ``file_size`` (it stops there and then
        fails the CRC check), so a lying directory cannot get past these checks either.
        """
        if path in self.admitted:
            return self.admitted[path]
        info = self._member(path)
        if info is None:
            raise XlsxError(DAMAGED, detail=f"missing part {path}")
        limits = self.limits
        if info.flag_bits & 0x1:
            raise XlsxError(ENCRYPTED, detail=path)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise XlsxError(COMPRESSION, detail=f"{path} method {info.compress_type}")
        self.unzipped += info.file_size
        if self.unzipped > limits.max_unzipped_bytes:
            detail = f"{path} declares {info.file_size:,} bytes"
            raise XlsxError(UNZIPPED.format(limit=limits.max_unzipped_bytes / MB), detail=detail)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_exempt_bytes and ratio > limits.max_ratio:
            detail = f"{path}: {info.compress_size:,} → {info.file_size:,} bytes"
            raise XlsxError(RATIO.format(limit=limits.max_ratio), detail=detail)
        self.admitted[path] = info
        return info

    def _count_tags(self, path: str, *, sheet: bool = False) -> None:
        """Count a part's tags in C, at inflate speed, before expat and Python see any of them.

        Parse time follows the number of tags, whatever they are, so all parts read share one
        budget of ``<`` characters (text cannot hold a bare ``<``). In the sheet the ``<row>``
        and ``<c>`` tags are counted as well, so that a sheet of formatted empty cells gets
        the sentence about cells; the marks are those tags as every writer emits them, without
        a namespace prefix, and the parser's exact count holds a prefixed sheet to the limit.
        """
        info, limits = self._admit(path), self.limits
        elements, tail = 0, b""
        with self.zip.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                self.tags += chunk.count(b"<")
                if self.tags > limits.max_tags:
                    raise XlsxError(TAGS.format(limit=limits.max_tags), detail=path)
                if not sheet:
                    continue
                # the window overlaps the previous chunk so that marks split across chunks are
                # found; marks lying wholly in the overlap were counted last time
                window = tail + chunk
                elements += sum(window.count(m) - tail.count(m) for m in _ELEMENT_MARKS)
                if elements > limits.max_cells:
                    raise XlsxError(CELLS.format(limit=limits.max_cells), detail="counted")
                tail = chunk[-5:]
        self.counted.add(path)

    def _parse(self, path: str, part: _Part) -> None:
        """Stream one part through expat in chunks, so memory follows the chunk, not the part."""
        info = self._admit(path)
        if path not in self.counted:
            self._count_tags(path)
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True  # joins text pieces, but never beyond its 8 kB buffer
        # OOXML never has a DTD, so any is refused before its first entity is declared, let
        # alone expanded: this is what stops a billion-laughs part.
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_entity
        parser.StartElementHandler = part.start
        parser.EndElementHandler = part.end
        if part.wants_text:
            parser.CharacterDataHandler = part.text
        with self.zip.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                parser.Parse(chunk, False)
        parser.Parse(b"", True)


def _refuse_doctype(name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
    raise XlsxError(ENTITIES, detail=f"DOCTYPE {name}"[:100])


def _refuse_entity(name: str, *args: object) -> None:
    raise XlsxError(ENTITIES, detail=f"ENTITY {name}"[:100])


def _resolve(base: str, target: str | None) -> str | None:
    """A relationship target as a zip member name: relative to the source part, or absolute."""
    if not target:
        return None
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(base, target)
    path = posixpath.normpath(joined)
    return None if path.startswith("..") else path


# -- the XML parts --------------------------------------------------------------------------------

# expat keeps every open element on its own stack in C, so deep nesting is a memory attack of its
# own; real OOXML nests about ten deep.
_MAX_DEPTH = 64
# Excel's own ceilings: anything beyond them did not come from a spreadsheet program.
_EXCEL_ROWS = 1_048_576
_EXCEL_COLUMNS = 16_384
_EXCEL_STYLES = 65_536
_EXCEL_FORMAT_CHARS = 255
_MAIN = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
# r:id, expanded: "http://schemas.openxmlformats.org/officeDocument/2006/relationships id"
_RELATIONSHIP_ID = "relationships id"


def _tags(*names: str) -> dict[str, str]:
    """Expanded 'namespace local' names to local names, for the transitional and strict schemas."""
    return {f"{ns} {local}": local for ns in _MAIN for local in names}


class _Part:
    """Handlers for one XML part; ``start`` and ``end`` count depth against ``_MAX_DEPTH``."""

    depth = 0
    wants_text = False  # a text handler costs a call for every run of whitespace, too

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise XlsxError(DAMAGED, detail=f"XML nested deeper than {_MAX_DEPTH}")
        self.open(name.rpartition(" ")[2], attrs)

    def end(self, name: str) -> None:
        self.depth -= 1

    def text(self, data: str) -> None:
        pass

    def open(self, local: str, attrs: dict[str, str]) -> None:
        pass


class _RootRelsPart(_Part):
    workbook: str | None = None

    def open(self, local: str, attrs: dict[str, str]) -> None:
        if (
            local == "Relationship"
            and self.workbook is None
            and _internal(attrs)
            and attrs.get("Type", "").endswith(_WORKBOOK_REL)
        ):
            self.workbook = attrs.get("Target")


class _BookRelsPart(_Part):
    """Only the relationships asked for are kept, so a flood of them costs no memory."""

    def __init__(self, sheet_ids: set[str]) -> None:
        self.wanted = sheet_ids
        self.sheets: dict[str, str] = {}
        self.strings: str | None = None
        self.styles: str | None = None

    def open(self, local: str, attrs: dict[str, str]) -> None:
        if local != "Relationship" or not _internal(attrs):
            return
        kind, target = attrs.get("Type", ""), attrs.get("Target")
        if kind.endswith(_SHEET_REL) and attrs.get("Id") in self.wanted:
            self.sheets[attrs["Id"]] = target or ""
        elif kind.endswith(_STRINGS_REL) and self.strings is None:
            self.strings = target
        elif kind.endswith(_STYLES_REL) and self.styles is None:
            self.styles = target


def _internal(attrs: dict[str, str]) -> bool:
    return attrs.get("TargetMode", "Internal") != "External"


class _BookPart(_Part):
    """Sheet order and the date system; the first worksheet is the one read."""

    _MAX_SHEETS = 1_000

    def __init__(self) -> None:
        self.is_workbook = False
        self.sheet_ids: list[str] = []
        self.epoch: datetime = CALENDAR_WINDOWS_1900

    def open(self, local: str, attrs: dict[str, str]) -> None:
        if self.depth == 1:
            self.is_workbook = local == "workbook"
        elif local == "sheet" and self.depth == 3 and len(self.sheet_ids) < self._MAX_SHEETS:
            rid = next((v for k, v in attrs.items() if k.endswith(_RELATIONSHIP_ID)), None)
            if rid:
                self.sheet_ids.append(rid)
        elif local == "workbookPr" and attrs.get("date1904", "") not in ("", "false", "f", "0"):
            # the same test openpyxl applies, so dates match what openpyxl would read
            self.epoch = CALENDAR_MAC_1904


class _StylesPart(_Part):
    """Which cell styles (``s`` indexes into ``cellXfs``) format their numbers as dates."""

    def __init__(self) -> None:
        self.custom: dict[int, str] = {}
        self.xf_formats: list[int] = []
        self.section = ""

    def open(self, local: str, attrs: dict[str, str]) -> None:
        if self.depth == 2:
            # numFmt and xf also appear under dxfs and cellStyleXfs, which do not style cells
            self.section = local
        elif local == "numFmt" and self.section == "numFmts":
            code = attrs.get("formatCode", "")
            # openpyxl's date test is a regex that is slow on long codes; Excel stops at 255.
            if len(code) > _EXCEL_FORMAT_CHARS or len(self.custom) >= _EXCEL_STYLES:
                raise XlsxError(DAMAGED, detail="number formats beyond Excel's limits")
            self.custom[_small_int(attrs.get("numFmtId", ""))] = code
        elif local == "xf" and self.section == "cellXfs":
            if len(self.xf_formats) >= _EXCEL_STYLES:
                raise XlsxError(DAMAGED, detail="cell styles beyond Excel's limits")
            self.xf_formats.append(_small_int(attrs.get("numFmtId", "0")))

    def date_styles(self) -> dict[int, bool]:
        """Style index → True for a duration format, False for a date format."""
        verdicts: dict[int, bool | None] = {}
        styles: dict[int, bool] = {}
        for index, fmt_id in enumerate(self.xf_formats):
            if fmt_id not in verdicts:
                code = self.custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
                verdict = None
                if is_date_format(code):
                    verdict = bool(is_timedelta_format(code))
                verdicts[fmt_id] = verdict
            if (found := verdicts[fmt_id]) is not None:
                styles[index] = found
        return styles

    def percent_styles(self) -> frozenset[int]:
        """Style indexes whose number format shows the value × 100 with a '%' ('0%', '0.0%')."""
        percent = {
            fmt_id
            for fmt_id in set(self.xf_formats)
            if _is_percent_format(self.custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id)))
        }
        return frozenset(i for i, fmt_id in enumerate(self.xf_formats) if fmt_id in percent)


def _is_percent_format(code: str | None) -> bool:
    """Whether Excel shows a number in ``code`` × 100: a '%' outside quotes, escapes and [..].

    ``0"% met"`` (the quarterly report's own format) only labels the number, so it is not one.
    """
    if not code:
        return False
    plain = re.sub(r'"[^"]*"?|\\.|\[[^\]]*\]?|_.|\*.', "", code)
    return "%" in plain


def _percent_text(number: float) -> str:
    """The percentage Excel shows for ``number``, exactly: 0.29 → '29%' (0.29 × 100 in floats is
    28.999999999999996). Kept to Excel's 15 significant digits."""
    exact = Context(prec=15).create_decimal(repr(number)).scaleb(2).normalize()
    return f"{exact:f}%"


class _LongText:
    """Stands in for a shared string over the cell limit, refused only where a cell uses it."""


_LONG_TEXT = _LongText()


class _StringsPart(_Part):
    """The shared strings, each run-joined as openpyxl joins them (phonetic runs left out)."""

    wants_text = True

    def __init__(self, limits: XlsxLimits) -> None:
        self.limits = limits
        self.strings: list[str | _LongText] = []
        self.pieces: list[str] = []
        self.length = 0
        self.capture = False
        self.phonetic = False

    def open(self, local: str, attrs: dict[str, str]) -> None:
        if local == "si":
            if len(self.strings) >= self.limits.max_shared_strings:
                raise XlsxError(TEXTS.format(limit=self.limits.max_shared_strings))
            self.pieces, self.length = [], 0
        elif local == "t":
            self.capture = not self.phonetic
        elif local == "rPh":
            self.phonetic = True

    def end(self, name: str) -> None:
        self.depth -= 1
        local = name.rpartition(" ")[2]
        if local == "t":
            self.capture = False
        elif local == "rPh":
            self.phonetic = False
        elif local == "si":
            if self.length > self.limits.max_cell_chars:
                self.strings.append(_LONG_TEXT)
            else:
                # openpyxl drops this escape prefix from shared strings (not inline ones)
                self.strings.append("".join(self.pieces).replace("x005F_", ""))

    def text(self, data: str) -> None:
        if self.capture:
            self.length += len(data)
            if self.length <= self.limits.max_cell_chars:
                self.pieces.append(data)
            else:
                self.pieces = []


_SHEET_TAGS = _tags("c", "v", "f", "row", "is", "t", "rPh", "sheetData", "mergeCell")
_NUMBER_CHARS = 400  # a double needs about 25; longer "numbers" are refused, not converted


class _SheetPart(_Part):
    """The worksheet's rows and merged ranges. This handler runs once per XML element of a
    possibly huge sheet, so it is written for speed: no per-element objects, and an empty
    formatted cell costs two dictionary lookups and a counter."""

    wants_text = True

    def __init__(
        self,
        limits: XlsxLimits,
        strings: list[str | _LongText],
        date_styles: dict[int, bool],
        percent_styles: frozenset[int],
        epoch: datetime,
    ) -> None:
        self.limits = limits
        self.strings = strings
        self.date_styles = date_styles
        self.percent_styles = percent_styles
        self.epoch = epoch
        self.rows: list[tuple[int, list[object]]] = []
        self.merged: list[tuple[int, int, int, int, str]] = []
        self.in_data = False
        self.row = 0
        self.row_open = False
        self.values: dict[int, object] = {}
        self.data_rows = 0
        self.elements = 0  # <row> and <c> elements, against max_cells
        self.max_elements = limits.max_cells
        self.column = 0
        self.kind = ""
        self.style = ""
        self.in_cell = False
        self.formula = False
        self.pieces: list[str] | None = None
        self.length = 0
        self.capture = False
        self.inline = False
        self.phonetic = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise XlsxError(DAMAGED, self.row or None, f"XML nested deeper than {_MAX_DEPTH}")
        tag = _SHEET_TAGS.get(name)
        if tag == "c":
            # the hot path, inlined: a sheet may hold a million of these, most of them empty
            if not self.row_open:
                return
            self.elements += 1
            if self.elements > self.max_elements:
                raise XlsxError(CELLS.format(limit=self.max_elements), self.row)
            ref = attrs.get("r")
            self.column = self.column + 1 if ref is None else _column_number(ref)
            if self.column > _EXCEL_COLUMNS:
                raise XlsxError(DAMAGED, self.row, f"cell {ref!r} beyond column XFD"[:100])
            self.kind = attrs.get("t", "n")
            self.style = attrs.get("s", "")
            self.in_cell, self.formula, self.pieces, self.length = True, False, None, 0
        elif tag is None:
            return
        elif tag == "v":
            if self.in_cell and self.kind != "inlineStr" and self.pieces is None:
                self.pieces, self.capture = [], True
        elif tag == "f":
            self.formula = self.in_cell
        elif tag == "row":
            self._start_row(attrs)
        elif tag == "is":
            if self.in_cell and self.kind == "inlineStr" and self.pieces is None:
                self.pieces, self.inline = [], True
        elif tag == "t":
            self.capture = self.inline and not self.phonetic
        elif tag == "rPh":
            self.phonetic = True
        elif tag == "sheetData":
            self.in_data = True
        elif tag == "mergeCell":
            self._merge(attrs.get("ref", ""))

    def end(self, name: str) -> None:
        self.depth -= 1
        tag = _SHEET_TAGS.get(name)
        if tag == "c":
            self.in_cell = self.capture = self.inline = False
            if self.pieces is not None:  # an empty cell, perhaps formatted, has neither
                self._end_cell()
            elif self.formula:
                self._no_result()
        elif tag is None:
            return
        elif tag == "v" or tag == "t":
            self.capture = False
        elif tag == "row":
            self._end_row()
        elif tag == "is":
            self.inline = False
        elif tag == "rPh":
            self.phonetic = False
        elif tag == "sheetData":
            self.in_data = False

    def text(self, data: str) -> None:
        if self.capture:
            assert self.pieces is not None
            self.length += len(data)
            if self.length > self.limits.max_cell_chars:
                # refused while the text is still streaming in, not after it is all held
                cell = self._cell()
                raise XlsxError(
                    CELL_TEXT.format(cell=cell, limit=self.limits.max_cell_chars), self.row, cell
                )
            self.pieces.append(data)

    def _start_row(self, attrs: dict[str, str]) -> None:
        if not self.in_data:
            return
        ref = attrs.get("r")
        number = self.row + 1 if ref is None else _row_number(ref)
        # Excel keeps rows in ascending order and refuses files that do not.
        if not self.row < number <= _EXCEL_ROWS:
            raise XlsxError(DAMAGED, self.row or None, f"row {ref!r} after row {self.row}"[:100])
        self.row, self.column, self.row_open = number, 0, True
        self.elements += 1
        if self.elements > self.max_elements:
            raise XlsxError(CELLS.format(limit=self.max_elements), self.row)

    def _end_row(self) -> None:
        self.row_open = False
        values = self.values
        if not values:
            return
        self.data_rows += 1
        if self.data_rows > self.limits.max_rows:
            raise XlsxError(ROWS.format(limit=self.limits.max_rows), self.row)
        self.rows.append((self.row, [values.get(c) for c in range(1, max(values) + 1)]))
        self.values = {}

    def _end_cell(self) -> None:
        assert self.pieces is not None
        text = "".join(self.pieces)
        if self.formula and not text and self.kind != "str":
            # Excel saves every formula's result; t="str" with no text is a formula giving "".
            self._no_result()
        value = self._value(text)
        if value is None or value == "":
            return
        if self.column > self.limits.max_columns:
            cell = self._cell()
            raise XlsxError(COLUMNS.format(cell=cell, limit=self.limits.max_columns), self.row)
        self.values[self.column] = value

    def _value(self, text: str) -> object:
        """The cell's value by openpyxl's rules for ``data_only=True`` (WorkSheetParser)."""
        kind = self.kind
        try:
            if kind == "n":
                if not text:
                    return None
                if len(text) > _NUMBER_CHARS:
                    raise ValueError("number too long")
                number = float(text) if "." in text or "e" in text or "E" in text else int(text)
                style = _small_int(self.style) if self.style else 0
                if style not in self.date_styles:
                    if style in self.percent_styles and math.isfinite(number):
                        return _percent_text(number)
                    return number
                try:
                    return from_excel(number, self.epoch, timedelta=self.date_styles[style])
                except (OverflowError, ValueError):
                    return "#VALUE!"  # what openpyxl gives for a date serial out of range
            if kind == "s":
                if not text:
                    return None
                shared = self.strings[_small_int(text)]
                if isinstance(shared, _LongText):
                    cell = self._cell()
                    limit = self.limits.max_cell_chars
                    raise XlsxError(CELL_TEXT.format(cell=cell, limit=limit), self.row, cell)
                return shared
            if kind == "b":
                return bool(int(text)) if text else None
            if kind == "d":
                if len(text) > _NUMBER_CHARS:
                    raise ValueError("date too long")
                return from_ISO8601(text)
            if kind == "inlineStr":
                return text
            return text or None  # "str" (a formula's text), "e" (an error such as #N/A)
        except (ValueError, IndexError, TypeError):
            cell = self._cell()
            raise XlsxError(
                BAD_VALUE.format(cell=cell), self.row, f"{kind} {text[:50]!r}"
            ) from None

    def _no_result(self) -> None:
        cell = self._cell()
        raise XlsxError(NO_RESULT.format(cell=cell), self.row, cell)

    def _cell(self) -> str:
        return f"{get_column_letter(self.column)}{self.row}"

    def _merge(self, ref: str) -> None:
        if len(self.merged) >= self.limits.max_merged:
            raise XlsxError(MERGED.format(limit=self.limits.max_merged))
        if len(ref) > 32:  # "XFD1048576:XFD1048576" is 21; range_boundaries is a regex
            raise XlsxError(DAMAGED, detail=f"merge {ref[:40]!r}")
        bounds = range_boundaries(ref)
        if None in bounds:
            raise XlsxError(DAMAGED, detail=f"merge {ref!r}")
        min_col, min_row, max_col, max_row = (int(b) for b in bounds)
        if not (1 <= min_col <= max_col and 1 <= min_row <= max_row):
            raise XlsxError(DAMAGED, detail=f"merge {ref!r}")
        start = f"{get_column_letter(min_col)}{min_row}"
        end = f"{get_column_letter(max_col)}{max_row}"
        coord = start if start == end else f"{start}:{end}"
        self.merged.append((min_row, min_col, max_row, max_col, coord))


def _small_int(text: str) -> int:
    """An index or id: int() of a long digit string is slow, so length is checked first."""
    if len(text) > 10:
        raise ValueError(f"{text[:20]!r}… is not a small integer")
    number = int(text)
    if number < 0:  # a negative index would quietly count from the end of a list
        raise ValueError(f"{text!r} is negative")
    return number


def _row_number(text: str) -> int:
    if len(text) > 12:
        raise ValueError(f"row {text[:20]!r}…")
    try:
        return int(text)
    except ValueError:
        value = float(text)  # some writers put "5.0"; openpyxl accepts whole floats
        if not value.is_integer():
            raise
        return int(value)


def _column_number(ref: str) -> int:
    """The column of a cell reference such as ``AB12`` (1-based)."""
    letters = ref.rstrip("0123456789")
    if not 0 < len(letters) <= 3:
        raise ValueError(f"cell reference {ref[:20]!r}")
    number = 0
    for char in letters.upper():
        digit = ord(char) - 64
        if not 1 <= digit <= 26:
            raise ValueError(f"cell reference {ref[:20]!r}")
        number = number * 26 + digit
    return number
