"""RAG bands written out in one cell: "Green ≥ 92%, Amber 85–91.9%, Red < 85%"; and a target
with its tolerance labelled in one cell: "Target: 85%, Tolerance: 80%".

Council and NHS KPI frameworks often give the target as its colour bands rather than a target and
a tolerance. The green band's edge is the target and the amber band's outer edge the tolerance;
the red band must be what is left. This module reads such a cell into the two phrases the target
grammar reads anyway ("at least 92%", "at least 85%"), so a band cell means exactly what the
same target and tolerance written out would. Bands that overlap, leave a gap, or point the
other way from the KPI's polarity are refused, naming the bands.

>>> b = read_bands("Green >= 92%, Amber 85-91.9%, Red < 85%")
>>> (b.polarity, b.target, b.tolerance)
('bigger', 'at least 92%', 'at least 85%')
>>> read_bands("G: <5% A: 5-10% R: >10%").target
'at most 5%'
>>> read_bands("95%") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COLOUR = {"green": "green", "g": "green", "amber": "amber", "a": "amber", "red": "red", "r": "red"}
# A colour word that starts a band: 'Green', 'G:', '(A)', 'Red ='. Single letters only with a
# mark after them, so the article 'a' in running text is not a band.
_LABEL = re.compile(r"(?i)(?<![\w.])(?:(green|amber|red)\b ?[:=\-–—]?|\(?\b([gar])\)? ?[:=\-–—]) ?")
_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"\s*(%|per\s*cent|percent)?"
_LOW_WORDS = r"(?:>=|≥|=>|at\s+least|not\s+less\s+than|no\s+less\s+than|minimum(?:\s+of)?|min\.?)"
_HIGH_WORDS = r"(?:<=|≤|=<|at\s+most|no\s+more\s+than|not\s+more\s+than|maximum(?:\s+of)?|max\.?)"
_ABOVE = r"(?:>|above|over|more\s+than|greater\s+than|exceeding)"
_BELOW = r"(?:<|below|under|less\s+than|fewer\s+than)"
_AFTER_LOW = r"(?:\+|\s+or\s+(?:more|above|over|higher|greater)|\s+and\s+(?:above|over))"
_AFTER_HIGH = r"(?:\s+or\s+(?:less|below|under|fewer|lower)|\s+and\s+(?:below|under))"
_DASH = r"\s*(?:-|–|—|to)\s*"


@dataclass(frozen=True)
class Edge:
    """One band: the values from ``low`` to ``high`` (None: unbounded), each end inclusive or not."""

    low: float | None
    high: float | None
    low_strict: bool = False
    high_strict: bool = False
    percent: bool = False
    places: int = 0  # decimals written: '91.9' is 1, so 91.9 and 92 are adjacent


def _edge(text: str) -> Edge | None:
    t = " ".join(text.strip().rstrip(",;.").split())
    forms: list[tuple[str, int]] = [
        (rf"{_NUM}{_UNIT}{_DASH}{_NUM}{_UNIT}", 0),
        (rf"{_LOW_WORDS}\s*{_NUM}{_UNIT}", 1),
        (rf"{_NUM}{_UNIT}{_AFTER_LOW}", 1),
        (rf"{_ABOVE}\s*{_NUM}{_UNIT}", 2),
        (rf"{_HIGH_WORDS}\s*{_NUM}{_UNIT}", 3),
        (rf"{_NUM}{_UNIT}{_AFTER_HIGH}", 3),
        (rf"{_BELOW}\s*{_NUM}{_UNIT}", 4),
        (rf"{_NUM}{_UNIT}", 5),  # one value: 'Green = 0'
    ]
    for pattern, form in forms:
        m = re.fullmatch(pattern, t, re.IGNORECASE)
        if m is None:
            continue
        pct = any(g and not g[0].isdigit() for g in m.groups()[1:])
        places = max(len(g.partition(".")[2]) for g in m.groups() if g and g[0].isdigit())
        if form == 0:
            a, b = float(m.group(1)), float(m.group(3))
            return Edge(min(a, b), max(a, b), percent=pct, places=places) if a != b else None
        value = float(m.group(1))
        return {
            1: Edge(value, None, percent=pct, places=places),
            2: Edge(value, None, low_strict=True, percent=pct, places=places),
            3: Edge(None, value, percent=pct, places=places),
            4: Edge(None, value, high_strict=True, percent=pct, places=places),
            5: Edge(value, value, percent=pct, places=places),
        }[form]
    return None


@dataclass(frozen=True)
class Bands:
    """A band cell read: its polarity, and the target and tolerance in the grammar's words."""

    text: str
    polarity: str | None  # None: the words leave it to the KPI's polarity
    target: str
    tolerance: str | None
    labelled: bool = False  # 'Target: 85%, Tolerance: 80%' rather than colour bands

    @property
    def note(self) -> str:
        tolerance = f", tolerance '{self.tolerance}'" if self.tolerance else ""
        source = "the cell's labels" if self.labelled else "its RAG bands"
        return f"read from {source}: target '{self.target}'{tolerance}"


class BandsError(ValueError):
    """Bands that name green and another colour but cannot be read as one target and tolerance."""


def _words(value: float, percent: bool, *, low: bool, strict: bool) -> str:
    number = f"{value:g}{'%' if percent else ''}"
    if strict:
        return f"{'more' if low else 'less'} than {number}"
    return f"{'at least' if low else 'at most'} {number}"


def _meets(inner: float, outer: float, up: bool, places: int) -> str | None:
    """Why a band ending at ``inner`` does not meet the better band starting at ``outer``, or
    None: it must not reach past it, and leave no gap wider than one step of the figures as
    written (amber '85-91.9' meets green '92'; '85-90' leaves 90 to 92 to no band)."""
    past = inner > outer if up else inner < outer
    if past:
        return "overlap"
    if abs(outer - inner) > 10.0**-places + 1e-9:
        return "leave a gap"
    return None


# 'Target: 85%, Tolerance: 80%', 'Target 90% (tolerance 85%)': both terms, labelled, in one cell.
# Found by two plain searches on single-spaced text, not one pattern: optional spaces and marks
# around a lazy '.+?' backtrack exponentially on a run of spaces.
_TARGET_LABEL = re.compile(r"(?i)target\b(?: level)? ?[:=\-–]?")
_TOLERANCE_LABEL = re.compile(r"(?i)\b(?:tolerance(?: level)?|lower threshold)\b ?[:=\-–]?")
_FIGURE = re.compile(r"[^\d]*?(\d+(?:\.\d+)?) ?(?:%|per ?cent)?")


def _labelled(text: str) -> Bands | None:
    """``text`` (its spaces single) read as 'Target … Tolerance …', or None."""
    head = _TARGET_LABEL.match(text)
    tail = _TOLERANCE_LABEL.search(text, head.end()) if head else None
    if head is None or tail is None:
        return None
    target = text[head.end() : tail.start()].strip(" ,;(")
    tolerance = text[tail.end() :].strip(" ,;").removesuffix(")").strip()
    if not target or not tolerance:
        return None
    polarity = None
    a, b = _FIGURE.fullmatch(target), _FIGURE.fullmatch(tolerance)
    if a and b and float(a.group(1)) != float(b.group(1)):
        polarity = "bigger" if float(a.group(1)) > float(b.group(1)) else "smaller"
    return Bands(text, polarity, target, tolerance, labelled=True)


def read_bands(text: str) -> Bands | None:
    """``text`` read as RAG bands, or as a target and a tolerance labelled in one cell; None when
    it is neither (no green band and another colour, no 'Target … Tolerance …'). Raise
    ``BandsError`` when it is bands that do not fit together."""
    text = " ".join(text.split())  # single spaces: no pattern below can backtrack on a run
    labelled = _labelled(text)
    if labelled is not None:
        return labelled
    marks = list(_LABEL.finditer(text))
    colours = [(_COLOUR[(m.group(1) or m.group(2)).lower()], m) for m in marks]
    named = {c for c, _ in colours}
    if "green" not in named or len(named) < 2 or len(colours) != len(named):
        return None
    if text[: marks[0].start()].strip(" ,;:()-"):  # words before the first band: not a band cell
        return None
    edges: dict[str, Edge] = {}
    for n, (colour, m) in enumerate(colours):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        edge = _edge(text[m.end() : end])
        if edge is None:
            words = " ".join(text[m.start() : end].split()).rstrip(",;")
            raise BandsError(f"I could not read the band '{words}' in '{text}'")
        edges[colour] = edge
    return _fit(text, edges)


def _fit(shown: str, edges: dict[str, Edge]) -> Bands:
    green, amber, red = edges["green"], edges.get("amber"), edges.get("red")

    def refuse(why: str) -> BandsError:
        return BandsError(f"the RAG bands in '{shown}' {why}")

    percent = any(e.percent for e in edges.values())
    if green.low is not None and green.high is None:
        up = True
    elif green.high is not None and green.low is None:
        up = False
    elif green.low is not None and green.high is not None:
        # A closed green band ('Green 95-100%', 'Green 0-5%'): its open side is where red lies.
        worse = amber or red
        assert worse is not None
        up = (worse.high if worse.high is not None else worse.low or 0.0) <= green.low
    else:  # pragma: no cover - _edge always bounds one side
        raise refuse("give green no edge")
    edge = green.low if up else green.high
    strict = green.low_strict if up else green.high_strict
    assert edge is not None
    target = _words(edge, percent, low=up, strict=strict)
    tolerance: str | None = None
    if amber is not None:
        near, far = (amber.high, amber.low) if up else (amber.low, amber.high)
        if near is None or far is None:
            raise refuse("give amber no band between green and red")
        why = _meets(near, edge, up, max(amber.places, green.places))
        if why:
            raise refuse(f"{why} between amber ({near:g}) and green ({edge:g})")
        far_strict = amber.low_strict if up else amber.high_strict
        tolerance = _words(far, percent, low=up, strict=far_strict)
        edge, places = far, amber.places
    else:
        places = green.places
    if red is not None:
        red_edge = red.high if up else red.low
        if red_edge is None or (red.low is not None and red.high is not None):
            raise refuse("give red a band that is not below (or above) the others")
        why = _meets(red_edge, edge, up, max(red.places, places))
        if why:
            raise refuse(f"{why} between red ({red_edge:g}) and the band next to it ({edge:g})")
    return Bands(shown, "bigger" if up else "smaller", target, tolerance)
