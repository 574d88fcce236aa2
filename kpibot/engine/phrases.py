"""Contract phrases as tokens: every number with its unit, and every number that is not a target.

The first half of the target grammar (``kpibot.engine.reading`` is the second). ``lex`` turns a
phrase such as "To resolve 97 per cent of all complaints within five working days" into tokens:
words, punctuation and *quantities* (a number with its unit: ``97 percent``, ``5 working_days``,
``£3,000,000``), with a comparator attached where the words put one ("no more than 30 days",
"95% or more"). Numbers that are not quantities are recognised deliberately and set aside with a
note saying what they are: years and financial years (``2008-09``), dates (``31 March 2002``),
quarters (``Q1``), labels (``Key Target 1``, ``stage 2``, ``NI191``), footnote markers
(``days1``, ``*``, ``[3]``) and rate denominators (``per 100,000``). Any other number stays a
quantity, so the reader must account for it or refuse the phrase naming it.

>>> [t.text for t in lex("To resolve 97 per cent of complaints within five days").quantities()]
['97 per cent', 'five days']
>>> lex("by 31 March 2002").tokens[1].kind
'date'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property

from kpibot.engine.numbers import UK, NumberError, parse_number
from kpibot.engine.vocabulary import (
    FILLERS,
    LABEL_WORDS,
    MONTHS,
    NUMBER_WORDS,
    PREFIX_CMPS,
    SCALES,
    SUFFIX_CMPS,
    TIME_CODES,
    TIME_UNITS,
    YEAR_LEADS,
    split_words,
)

# ---------------------------------------------------------------------------- tokens


# Capitalised colour and category words that name a call category before a small number.
_CATEGORY_WORDS = {"Red", "Amber", "Green", "Purple", "Cat"}


@dataclass(frozen=True)
class Tok:
    """One token. ``kind``: word, punct, qty (a quantity), or a number set aside: year, date,
    period (a quarter or contract year), label, footnote.

    A quantity has ``value`` in ``unit`` (percent, gbp, count, a time code, rate, times) and may
    carry ``cmp`` (``>=``, ``>``, ``<=``, ``<``, ``better``, ``worse``, ``no-worse``,
    ``no-better``) with ``cmp_words``, the words that set it; ``per`` is a rate's denominator.
    """

    kind: str
    text: str
    value: float | None = None
    unit: str | None = None
    cmp: str | None = None
    cmp_words: str | None = None
    per: float | None = None
    glued: bool = False
    spelled: bool = False
    when: date | None = None
    note: str | None = None

    @cached_property
    def low(self) -> str:
        return self.text.lower()


@dataclass
class Lexed:
    """A phrase as tokens, with notes on every number set aside (for explanations)."""

    text: str
    tokens: list[Tok]
    notes: list[str] = field(default_factory=list)

    def quantities(self) -> list[Tok]:
        return [t for t in self.tokens if t.kind == "qty"]

    def words(self) -> str:
        return " ".join(t.low for t in self.tokens if t.kind in ("word", "punct"))


def normalise(text: str) -> str:
    """One spelling for the many dashes, quotes and spaces of published text."""
    t = str(text)
    for a, b in (
        ("\u00a0", " "),
        ("\u202f", " "),
        ("\u2009", " "),
        ("’", "'"),
        ("‘", "'"),
        ("“", '"'),
        ("”", '"'),
        ("\u2011", "-"),
        ("\u2010", "-"),
        ("\u2212", "-"),
        ("–", "-"),
        ("—", " - "),
        ("…", "..."),
    ):
        t = t.replace(a, b)
    return re.sub(r"\s+", " ", t).strip()


_RAW = re.compile(
    r"(?P<num>\d(?:[\d,]*\d)?(?:\.\d+)?)|(?P<word>[A-Za-z][A-Za-z']*)|(?P<sp>\s+)|(?P<p>[^\sA-Za-z\d])"
)


def _raw_tokens(text: str) -> list[Tok]:
    out: list[Tok] = []
    glued = False
    for m in _RAW.finditer(text):
        if m["sp"]:
            glued = False
            continue
        kind = "num" if m["num"] else "word" if m["word"] else "punct"
        value = None
        if m["num"]:
            # One rule for figures everywhere: "1,800" is eighteen hundred; "8,5" is refused.
            try:
                value = parse_number(m["num"], UK)
            except NumberError as exc:
                out.append(Tok("badnum", m["num"], note=str(exc).rstrip(".")))
                glued = True
                continue
        out.append(Tok(kind, m.group(0), value, glued=glued and bool(out)))
        glued = True
    return out


# ---------------------------------------------------------------------------- lexing


def lex(text: str) -> Lexed:
    """Tokens for ``text``; see the module docstring."""
    lexed = Lexed(normalise(text), [])
    toks = _raw_tokens(lexed.text)
    toks = _glued(toks, lexed)
    toks = _spelled(toks)
    toks = _set_aside(toks, lexed)
    toks = _quantities(toks, lexed)
    toks = _names(toks, lexed)
    toks = _comparators(toks)
    lexed.tokens = toks
    return lexed


def _is(t: Tok | None, *words: str) -> bool:
    return t is not None and t.kind in ("word", "punct") and t.low in words


def _glued(toks: list[Tok], lexed: Lexed) -> list[Tok]:
    """Letters and digits written together: footnote markers, codes, ordinals, '£55m'."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        after = toks[i + 2] if i + 2 < len(toks) else None
        if t.kind == "word" and nxt is not None and nxt.kind == "num" and nxt.glued:
            if after is not None and after.glued and after.text == "%":
                # "time78%": two table cells run together; the word and the figure part.
                out.append(t)
                out.append(replace(nxt, glued=False))
                i += 2
                continue
            low = t.low
            if low in ("q", "qtr", "quarter") and nxt.value is not None and 1 <= nxt.value <= 4:
                out.append(Tok("period", t.text + nxt.text, nxt.value, note="quarter"))
                lexed.notes.append(f"'{t.text}{nxt.text}' is a quarter")
                i += 2
                continue
            if low in ("yr", "year") and nxt.value is not None and nxt.value < 20:
                out.append(Tok("period", t.text + nxt.text, nxt.value, note="contract year"))
                i += 2
                continue
            if len(low) >= 3 and low.islower() and t.text[0].islower() and low not in LABEL_WORDS:
                # "days1", "projects1": a footnote marker glued to the word it annotates.
                out.append(t)
                out.append(Tok("footnote", nxt.text))
                lexed.notes.append(f"'{nxt.text}' after '{t.text}' is a footnote marker")
                i += 2
                continue
            code = t.text + nxt.text
            j = i + 2
            while j < len(toks) and toks[j].glued and toks[j].kind in ("word", "num"):
                code += toks[j].text
                j += 1
            out.append(Tok("label", code))
            lexed.notes.append(f"'{code}' is a name or code, not a figure")
            i = j
            continue
        if t.kind == "num" and nxt is not None and nxt.kind == "word" and nxt.glued:
            low = nxt.low
            if low in ("k", "m", "bn"):
                out.append(t)
                out.append(nxt)
                i += 2
                continue
            if low in ("st", "nd", "rd", "th"):
                out.append(replace(t, note="ordinal"))
                i += 2
                continue
            if low in ("am", "pm"):
                out.append(Tok("label", t.text + nxt.text, note="time of day"))
                lexed.notes.append(f"'{t.text}{nxt.text}' is a time of day")
                i += 2
                continue
            if low in TIME_UNITS:
                out.append(t)
                out.append(replace(nxt, glued=False))
                i += 2
                continue
            if low == "s":
                out.append(Tok("label", t.text + "s", note="plural"))
                i += 2
                continue
            if not out and nxt.text[:1].isupper():
                # "49WAto deliver ...": a column reference run into the text by extraction
                ref = re.match(r"[A-Z]+", nxt.text)
                assert ref is not None
                out.append(Tok("label", t.text + ref.group(0), note="reference"))
                lexed.notes.append(f"'{t.text}{ref.group(0)}' is a reference, not a figure")
                rest = nxt.text[ref.end() :]
                if rest:
                    out.append(Tok("word", rest))
                i += 2
                continue
            if low == "kg":
                out.append(t)
                out.append(replace(nxt, glued=False))
                i += 2
                continue
            out.append(Tok("badnum", t.text + nxt.text))
            i += 2
            continue
        out.append(t)
        i += 1
    return out


def _spelled(toks: list[Tok]) -> list[Tok]:
    """Number words as numbers: 'five', 'twenty-four', 'two and a half', 'half an hour'."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        low = t.low
        if t.kind == "word" and low in NUMBER_WORDS:
            value = float(NUMBER_WORDS[low])
            j = i + 1
            if (
                j + 1 < len(toks)
                and toks[j].text == "-"
                and toks[j + 1].low in NUMBER_WORDS
                and value >= 20
            ):
                value += NUMBER_WORDS[toks[j + 1].low]
                j += 2
            if (
                j + 2 < len(toks)
                and _is(toks[j], "and")
                and _is(toks[j + 1], "a")
                and _is(toks[j + 2], "half")
            ):
                value += 0.5
                j += 3
            text = " ".join(x.text for x in toks[i:j]).replace(" - ", "-")
            if low == "one" and not _unit_follows(toks, j):
                out.append(t)  # "one" is as often a pronoun ("a cell designed for one")
                i += 1
                continue
            out.append(Tok("num", text, value, spelled=True))
            i = j
            continue
        if low == "half" and i + 2 < len(toks) and _is(toks[i + 1], "an", "a"):
            unit = toks[i + 2].low
            if unit in TIME_UNITS:
                out.append(Tok("num", f"{t.text} {toks[i + 1].text}", 0.5, spelled=True))
                i += 2
                continue
        if low in ("an", "a") and i + 1 < len(toks) and toks[i + 1].low in ("hour", "day"):
            prev = out[-1] if out else None
            if prev is not None and prev.low in ("within", "in", "under"):
                out.append(Tok("num", t.text, 1.0, spelled=True))
                i += 1
                continue
        out.append(t)
        i += 1
    return out


def _unit_follows(toks: list[Tok], j: int) -> bool:
    nxt = toks[j] if j < len(toks) else None
    if nxt is None:
        return False
    if nxt.text == "-" and j + 1 < len(toks):
        nxt = toks[j + 1]
    return nxt.low in TIME_UNITS or nxt.low in ("per", "in", "out", "working", "calendar")


def _year_range(toks: list[Tok], i: int) -> int:
    """Length of a financial-year form at ``i`` ('2008-09', '2003/04', '2005-6', '200405',
    '2020 to 2021'), or 0."""
    t = toks[i]
    if t.kind != "num" or t.value is None or "," in t.text or "." in t.text:
        return 0
    v = int(t.value)
    if len(t.text) == 6 and 1950 <= v // 100 <= 2099 and (v // 100 + 1) % 100 == v % 100:
        return 1
    if len(t.text) == 4 and 1950 <= v <= 2099 and i + 2 < len(toks):
        sep, nxt = toks[i + 1], toks[i + 2]
        if sep.text in ("-", "/") and nxt.kind == "num" and "." not in nxt.text:
            second = nxt.text
            if len(second) == 4 and v < int(second) <= v + 10:
                return 3
            if len(second) == 2:
                end = (v // 100) * 100 + int(second)
                end += 100 if end <= v else 0
                if end <= v + 10:
                    return 3
            if len(second) == 1 and int(second) == (v + 1) % 10:
                return 3
        # GOV.UK writes financial years out: '2020 to 2021' (only the next year, so that a band
        # such as '2000 to 2500' stays a band)
        if sep.low == "to" and nxt.kind == "num" and nxt.text == str(v + 1):
            return 3
    if len(t.text) == 2 and i + 2 < len(toks):
        sep, nxt = toks[i + 1], toks[i + 2]
        if (
            sep.text == "/"
            and nxt.kind == "num"
            and len(nxt.text) == 2
            and int(nxt.text) == (v + 1) % 100
            and not (i + 3 < len(toks) and toks[i + 3].text == "%")
        ):
            return 3
    return 0


def _set_aside(toks: list[Tok], lexed: Lexed) -> list[Tok]:
    """Years, dates, labels, footnote markers and list markers: numbers that are not quantities."""
    out: list[Tok] = []
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        prev = out[-1] if out else None
        # footnote markers
        if t.kind == "punct" and t.text in ("*", "†", "‡"):
            lexed.notes.append(f"'{t.text}' is a footnote marker")
            out.append(Tok("footnote", t.text))
            i += 1
            continue
        if (
            t.text == "["
            and i + 2 < n
            and toks[i + 1].kind == "num"
            and toks[i + 2].text == "]"
            and (toks[i + 1].value or 0) < 100
        ):
            lexed.notes.append(f"'[{toks[i + 1].text}]' is a footnote marker")
            out.append(Tok("footnote", f"[{toks[i + 1].text}]"))
            i += 3
            continue
        # list markers: "(iv)", "(a)", "a)"
        if (
            t.text == "("
            and i + 2 < n
            and toks[i + 2].text == ")"
            and toks[i + 1].kind == "word"
            and re.fullmatch(r"[ivx]{1,4}|[a-h]", toks[i + 1].low)
            and not out
        ):
            out.append(Tok("label", f"({toks[i + 1].text})", note="list marker"))
            i += 3
            continue
        # "(53% 2014)", "(4.5% 13/14)": last year's figure and its year, written beside a target
        if t.kind == "num" and _after_bracketed_figure(out):
            k = _year_range(toks, i) or (1 if _plain_year(t) else 0)
            if k and i + k < n and toks[i + k].text == ")":
                text = "".join(x.text for x in toks[i : i + k])
                out.append(Tok("year", text, note="year"))
                lexed.notes.append(f"'{text}' is a year")
                i += k
                continue
        # financial years
        k = _year_range(toks, i)
        if (
            k
            and not _money_or_pct_after(toks, i + k)
            and not (prev is not None and prev.text == "£")
            and not (len(toks[i].text) == 2 and not _year_context(out))
        ):
            text = "".join(x.text if x.text != "to" else " to " for x in toks[i : i + k])
            out.append(Tok("year", text, note="year"))
            lexed.notes.append(f"'{text}' is a year")
            i += k
            # "2003/04–75 per cent": the dash after a year joins it to what follows.
            if i < n and toks[i].text == "-" and i + 1 < n and toks[i + 1].kind == "num":
                i += 1
            continue
        # dates: "31 March 2002", "31st March", "March 2011", "1 October each year"
        day = t.kind == "num" and t.value is not None and 1 <= t.value <= 31 and "." not in t.text
        if day and i + 1 < n and toks[i + 1].low in MONTHS:
            j = i + 2
            year = None
            if j < n and _plain_year(toks[j]):
                year = int(toks[j].text)
                j += 1
            text = " ".join(x.text for x in toks[i:j])
            when = _date(year, MONTHS[toks[i + 1].low], int(t.value or 1))
            out.append(Tok("date", text, when=when, note="date"))
            lexed.notes.append(f"'{text}' is a date")
            i = j
            continue
        month = t.kind == "word" and t.low in MONTHS and i + 1 < n and _plain_year(toks[i + 1])
        if month and (
            t.low != "may" or (prev is not None and prev.low in ("by", "in", "end", "of"))
        ):
            year = int(toks[i + 1].text)
            text = f"{t.text} {toks[i + 1].text}"
            out.append(Tok("date", text, when=_month_end(year, MONTHS[t.low]), note="month"))
            lexed.notes.append(f"'{text}' is a date")
            i += 2
            continue
        if (
            _plain_year(t)
            and not _money_or_pct_after(toks, i + 1)
            and prev is not None
            and (prev.low in YEAR_LEADS or prev.kind in ("year", "date"))
            and not _cmp_before(out)
        ):
            out.append(Tok("year", t.text, note="year"))
            lexed.notes.append(f"'{t.text}' is a year")
            i += 1
            continue
        # field sizes: "the leading 25 (of 150) LEAs"
        if (
            t.text == "("
            and i + 3 < n
            and toks[i + 1].low == "of"
            and toks[i + 2].kind == "num"
            and toks[i + 3].text == ")"
        ):
            out.append(Tok("label", f"(of {toks[i + 2].text})", note="field size"))
            lexed.notes.append(f"'(of {toks[i + 2].text})' is the size of the field ranked")
            i += 4
            continue
        # times of day and telephone numbers: "7 am", "999 calls"
        if t.kind == "num" and i + 1 < n and toks[i + 1].low in ("am", "pm", "a.m."):
            out.append(Tok("label", f"{t.text} {toks[i + 1].text}", note="time of day"))
            lexed.notes.append(f"'{t.text} {toks[i + 1].text}' is a time of day")
            i += 2
            continue
        if (
            t.kind == "num"
            and t.text in ("999", "111", "101")
            and i + 1 < n
            and toks[i + 1].low in ("call", "calls", "service", "number")
        ):
            out.append(Tok("label", t.text, note="telephone number"))
            lexed.notes.append(f"'{t.text}' is a telephone number")
            i += 1
            continue
        # contract years and quarters written apart: "Yr 1 80%", "Quarter 4 Target"
        if (
            t.kind == "num"
            and prev is not None
            and prev.low in ("yr", "year", "quarter", "qtr", "q")
            and t.value is not None
            and t.value <= (4 if prev.low in ("quarter", "qtr", "q") else 20)
            and "." not in t.text
            and not _unit_after(toks, i + 1)
            and not _money_or_pct_after(toks, i + 1)
        ):
            what = "quarter" if prev.low in ("quarter", "qtr", "q") else "contract year"
            out[-1] = Tok("period", f"{prev.text} {t.text}", t.value, note=what)
            lexed.notes.append(f"'{prev.text} {t.text}' is a {what}")
            i += 1
            continue
        # ambulance and triage categories: "Category A (Red 1) calls", "Amber 2", "Cat 3"
        if (
            t.kind == "num"
            and prev is not None
            and prev.text in _CATEGORY_WORDS
            and t.value is not None
            and t.value <= 4
            and "." not in t.text
            and not (i + 1 < n and toks[i + 1].text in ("-", "–", "to", "%"))
            and not _money_or_pct_after(toks, i + 1)
            and not _unit_after(toks, i + 1)
        ):
            out.append(Tok("label", f"{prev.text} {t.text}", note="category"))
            lexed.notes.append(f"'{prev.text} {t.text}' is a category, not a figure")
            i += 1
            continue
        # labels: "stage 2", "Key Stages 1, 2 and 3", "Category 1", "KPI 4"
        if t.kind == "num" and prev is not None and prev.kind == "word":
            two = f"{out[-2].low} {prev.low}" if len(out) >= 2 else ""
            if (
                (two in LABEL_WORDS or prev.low in LABEL_WORDS)
                and not _money_or_pct_after(toks, i + 1)
                and not _unit_after(toks, i + 1)
            ):
                j = i + 1
                text = t.text
                while j + 1 < n and toks[j].text in (",", "and", "-") and toks[j + 1].kind == "num":
                    text += f"{toks[j].text} {toks[j + 1].text}"
                    j += 2
                if j < n and toks[j].text == "+" and toks[j].glued:
                    text += "+"
                    j += 1
                out.append(Tok("label", f"{prev.text} {text}", note="label"))
                lexed.notes.append(f"'{prev.text} {text}' is a name, not a figure")
                i = j
                continue
        out.append(t)
        i += 1
    return out


def _after_bracketed_figure(out: list[Tok]) -> bool:
    """Whether the tokens so far end '( NUM' or '( NUM %'."""
    tail = [x.text for x in out[-3:]]
    return (len(tail) >= 2 and tail[-2] == "(" and out[-1].kind == "num") or (
        len(tail) == 3 and tail[0] == "(" and out[-2].kind == "num" and tail[-1] == "%"
    )


def _plain_year(t: Tok) -> bool:
    return (
        t.kind == "num"
        and t.value is not None
        and len(t.text) == 4
        and 1950 <= t.value <= 2099
        and "." not in t.text
    )


def _year_context(out: list[Tok]) -> bool:
    """Two-digit years ('15/16') only after words that announce a year."""
    return bool(out) and out[-1].low in ("year", "years", "academic", "financial", "fy", "(")


def _cmp_before(out: list[Tok]) -> bool:
    return bool(out) and out[-1].text in (">", "<", "=", "£")


def _money_or_pct_after(toks: list[Tok], j: int) -> bool:
    if j >= len(toks):
        return False
    t = toks[j]
    if t.text == "%" or t.low in ("per", "percent", "k", "m", "million", "bn", "billion"):
        return t.low != "per" or (j + 1 < len(toks) and toks[j + 1].low == "cent")
    return False


def _unit_after(toks: list[Tok], j: int) -> bool:
    if j >= len(toks):
        return False
    t = toks[j]
    if t.text == "-" and j + 1 < len(toks):
        t = toks[j + 1]
    return t.low in TIME_UNITS or t.low in ("working", "calendar")


def _date(year: int | None, month: int, day: int) -> date | None:
    try:
        return date(year if year is not None else 2000, month, day)
    except ValueError:
        return None


def _month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def _quantities(toks: list[Tok], lexed: Lexed) -> list[Tok]:
    """Numbers with their units: percent, money, time, rates ('per 100,000', '1 in 20,000')."""
    out: list[Tok] = []
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        if t.text == "£" and i + 1 < n and toks[i + 1].kind == "num":
            num = toks[i + 1]
            value = num.value or 0.0
            j = i + 2
            text = f"£{num.text}"
            if j < n and toks[j].low in SCALES:
                value *= SCALES[toks[j].low]
                text += f" {toks[j].text}" if not toks[j].glued else toks[j].text
                j += 1
            out.append(Tok("qty", text, value, "gbp"))
            i = j
            continue
        if t.kind != "num":
            out.append(t)
            i += 1
            continue
        value = t.value or 0.0
        j = i + 1
        text = t.text
        unit = "count"
        nxt = toks[j] if j < n else None
        if nxt is not None and nxt.text == "%":
            unit, text, j = "percent", text + "%", j + 1
        elif nxt is not None and nxt.low == "percent":
            unit, text, j = "percent", f"{text} {nxt.text}", j + 1
        elif nxt is not None and nxt.low == "per" and j + 1 < n and toks[j + 1].low == "cent":
            unit, text, j = "percent", f"{text} per cent", j + 2
        elif nxt is not None and nxt.low in SCALES and not (nxt.low == "m" and nxt.glued is False):
            value *= SCALES[nxt.low]
            text += f" {nxt.text}"
            j += 1
            if j < n and toks[j].low == "pounds":
                unit = "gbp"
                j += 1
        else:
            k = j + 1 if (nxt is not None and nxt.text == "-") else j
            word = toks[k].low if k < n else ""
            if word in ("working", "calendar") and k + 1 < n and toks[k + 1].low in ("days", "day"):
                unit = "working_days" if word == "working" else "days"
                text = " ".join(x.text for x in toks[i : k + 2])
                j = k + 2
            elif word in TIME_UNITS:
                unit, size = TIME_UNITS[word]
                value *= size
                text = " ".join(x.text for x in toks[i : k + 1]).replace(" - ", "-")
                j = k + 1
                if unit == "days" and j < n and toks[j].low == "working":
                    unit, j = "working_days", j + 1
            elif word == "times" and k == j:
                unit, text, j = "times", f"{text} times", j + 1
            elif (
                k == j
                and k + 1 < n
                and toks[k].kind == "word"
                and toks[k].low.islower()
                and toks[k].low not in ("of", "per", "in", "a", "and", "or", "to", "the")
                and toks[k + 1].low in ("days", "hours", "weeks")
            ):
                # "five training days", "24 hours per week"
                unit, size = TIME_UNITS[toks[k + 1].low]
                text = f"{text} {toks[k].text} {toks[k + 1].text}"
                j = k + 2
        tok = Tok("qty", text, value, unit, spelled=t.spelled, note=t.note)
        # Rates: "3 per 100", "one per 20,000 prisoners", "1 in 20,000", "1:20,000"
        if (
            j + 1 < n
            and toks[j].low in ("per", "in", ":")
            and toks[j + 1].kind == "num"
            and (toks[j].low != "in" or (value == 1 and (toks[j + 1].value or 0) >= 10))
            and unit == "count"
        ):
            per = toks[j + 1].value
            tok = replace(
                tok,
                unit="rate",
                per=per,
                text=f"{text} {toks[j].text} {toks[j + 1].text}".replace(" : ", ":"),
            )
            j += 2
        out.append(tok)
        i = j
    # "per 100,000" standing alone normalises the measure
    final: list[Tok] = []
    for t in out:
        if (
            t.kind == "qty"
            and t.unit == "count"
            and final
            and final[-1].low == "per"
            and not (len(final) >= 2 and final[-2].kind == "qty")
        ):
            final[-1] = Tok("per", f"per {t.text}", t.value, note="rate denominator")
            lexed.notes.append(f"'per {t.text}' is the rate's denominator")
            continue
        final.append(t)
    return final


_WINDOW_AFTER = {"target", "targets", "period", "plan", "programme", "program", "window"}
_ADJECTIVE_OK = {"wait", "waits", "waiting", "limit", "maximum", "target", "standard", "return"}


def _names(toks: list[Tok], lexed: Lexed) -> list[Tok]:
    """Durations that name something ('the 31-day standard', 'a rolling 3 year period'),
    'N out of M' shares, and times of day ('at 1755 hours')."""
    out: list[Tok] = []
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        prev = out[-1] if out else None
        nxt = toks[i + 1] if i + 1 < n else None
        out_of = t.kind == "qty" and t.unit == "count" and nxt is not None and nxt.low == "out"
        if out_of and i + 3 < n and toks[i + 2].low == "of" and toks[i + 3].kind == "qty":
            whole = toks[i + 3].value or 0.0
            if whole > 0 and toks[i + 3].unit in ("count", "times"):
                share = 100.0 * (t.value or 0.0) / whole
                text = f"{t.text} out of {toks[i + 3].text}"
                out.append(Tok("qty", text, share, "percent", spelled=t.spelled))
                lexed.notes.append(f"'{text}' is {share:g}%")
                i += 4
                if i < n and toks[i].low == "times":
                    i += 1
                continue
        if t.kind == "qty" and t.unit in TIME_CODES:
            if (
                t.unit == "hours"
                and (t.value or 0) >= 100
                and prev is not None
                and prev.low == "at"
            ):
                out.append(Tok("label", t.text, note="time of day"))
                lexed.notes.append(f"'{t.text}' is a time of day")
                i += 1
                continue
            window = (nxt is not None and nxt.low in _WINDOW_AFTER) or (
                prev is not None and prev.low in ("rolling",)
            )
            if window:
                out.append(Tok("label", t.text, note="window"))
                lexed.notes.append(f"'{t.text}' names a period, it is not a figure")
                i += 1
                continue
            adjective = (
                "-" in t.text
                and prev is not None
                and (prev.low in ("the", "a", "an") or prev.low.endswith("'s"))
            )
            if (
                adjective
                and nxt is not None
                and nxt.kind == "word"
                and nxt.low not in _ADJECTIVE_OK
            ):
                out.append(Tok("label", t.text, note="name"))
                lexed.notes.append(f"'{t.text}' is part of a name, it is not a figure")
                i += 1
                continue
        out.append(t)
        i += 1
    return out


def _index(table: list[tuple[str, str]]) -> dict[str, list[tuple[list[str], str, str]]]:
    """Comparator phrases by their first word, longest first: (words split, words, symbol)."""
    out: dict[str, list[tuple[list[str], str, str]]] = {}
    for words, sym in table:
        parts = split_words(words)
        out.setdefault(parts[0], []).append((parts, words, sym))
    return out


_PREFIXES = _index(PREFIX_CMPS)
_SUFFIXES = _index(SUFFIX_CMPS)


def _comparators(toks: list[Tok]) -> list[Tok]:
    """Attach comparator words to the quantity they govern ('no more than 30 days', '95% or more')."""
    lows = [t.low if t.kind in ("word", "punct") else "\x00" for t in toks]
    out: list[Tok] = []
    i = 0
    n = len(toks)
    while i < n:
        matched = False
        for parts, words, sym in _PREFIXES.get(lows[i], ()):
            k = len(parts)
            if lows[i : i + k] != parts:
                continue
            j = skip = i + k
            # "a maximum of", "at least an average of": skip small filler words
            if k > 1 or words in ("exceed", "exceeding", "maximum", "minimum"):
                while skip < n and skip - j < 4 and lows[skip] in FILLERS:
                    skip += 1
            if skip < n and toks[skip].kind == "qty" and toks[skip].cmp is None:
                words_text = " ".join(x.text for x in toks[i:j])
                out.append(replace(toks[skip], cmp=sym, cmp_words=words_text))
                i = skip + 1
                matched = True
                break
        if matched:
            continue
        t = toks[i]
        if t.kind == "qty" and t.cmp is None and i + 1 < n:
            for parts, words, sym in _SUFFIXES.get(lows[i + 1], ()):
                k = len(parts)
                if lows[i + 1 : i + 1 + k] != parts or (words == "+" and not toks[i + 1].glued):
                    continue
                out.append(replace(t, cmp=sym, cmp_words=words))
                i += 1 + k
                matched = True
                break
            if not matched and i + 1 == n - 1 and toks[i + 1].text in (">", "<"):
                # "75%>": the sign after the figure reads "75% is greater than the value".
                sym = "<" if toks[i + 1].text == ">" else ">"
                out.append(replace(t, cmp=sym, cmp_words=toks[i + 1].text))
                i += 2
                matched = True
        if matched:
            continue
        out.append(t)
        i += 1
    return out
