"""The grammar on 388 real public KPI phrasings (tests/engine/data/target_phrasings.csv).

Every row is checked. A ``read`` row must read with the table's comparator, threshold, unit and
time limit (the ``within`` that is part of the measure, not the threshold); a ``refuse`` row must
be refused with a sentence that quotes the words it could not read. The table is the best proxy
for the unseen schedules kpibot will meet, so a silent misread (a reading that differs from the
label) fails this test outright.

Two explicit tables below list every row that does not match its label, each with its reason:

* ``DISAGREE``: rows whose label, after careful thought, kpibot reads differently on purpose;
  the test checks kpibot's own reading of them.
* ``STILL_REFUSED``: ``read`` rows kpibot refuses (with a reason naming the words). These are
  honest refusals, not misreads; the test fails if one starts being read, so the list shrinks as
  the grammar learns (move the row out and let the table check it).

The pass rate is the share of rows that match their label exactly; ``test_pass_rate`` holds it.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from kpibot.engine.reading import PhraseRefused, Reading, read_phrase

DATA = Path(__file__).parent / "data" / "target_phrasings.csv"
ROWS = list(csv.DictReader(DATA.open(encoding="utf-8")))
BY_ID = {r["id"]: r for r in ROWS}

# Rows kpibot reads differently from the label, on purpose. id -> (kpibot's reading, why).
# A reading is (comparator, threshold, unit, within) per part, as in the table's columns.
DISAGREE: dict[str, tuple[str, str]] = {
    # The cell says '5 days'; the label takes 'working days' from the standard's text in another
    # document. kpibot reads the words it is given.
    "P093": (">=|100|percent|5 days", "the cell says days, not working days"),
    # The table's single 'within' value belongs to the second part by the row's own notes
    # ("'within the first six months' is the time limit of the second part"); kpibot puts it there.
    "P109": (">=|87|percent|;>=|97|percent|6 months", "the time limit belongs to the 2nd part"),
    # A band '1-4 hours' for a smaller-is-better KPI is met at or below 4 hours: the same rating
    # as the label's ceiling of 4 hours, kept as a band so the explanation shows the words.
    "P324": ("between|1;4|hours|", "a band, rated as its upper end for smaller-is-better"),
    # A band on a bigger-is-better share reads as its low end, as seed 000's '50-75%' does; the
    # per-year profile the label mentions is in another cell that kpibot cannot see.
    # `contracts explain` shows the reading for both parties to sign off.
    "P312": ("between|80;90|percent|", "a band is read as seed 000's '50-75%' is"),
    # '75%>' is a red band. As a target for a bigger-is-better KPI it contradicts the polarity
    # and is refused; as a critical-failure threshold it reads as below 75%.
    "P311": ("critical <|75|percent|", "refused as a target, read as a critical failure"),
    # A bare '3 weeks' for a smaller-is-better KPI reads as a ceiling of 3 weeks; which statistic
    # (longest or average wait) it bounds is the KPI's name, which kpibot is given separately.
    "P364": ("<=|3|weeks|", "a bare duration is a ceiling on the KPI's own measure"),
}

# 'read' rows kpibot refuses, each with the reason its refusal gives.
STILL_REFUSED: dict[str, str] = {
    "P020": "'3' after 'cash terms' is a footnote marker set with a space; it cannot be told apart",
    "P051": "'3%' in a separate cell could be the level or the size of the reduction",
    "P098": "'two to a cell designed for one' uses number words that are not figures",
    "P176": "'taking one year with another' gives no averaging window",
    "P191": "one share with two time limits for two kinds of case",
    "P196": "a tolerance of 'the greater of 2 per cent of turnover or £1 million'",
    "P197": "'2,000 local Rating Lists' is probably the 2000 lists; the comma hides it",
    "P198": "two deadlines and a share in one cell",
    "P202": "'full' (100%) beside a 6 per cent rate inside the cost definition",
    "P211": "'a further 14 days' could run from the start or from the first limit",
    "P216": "a second cell ('targets ... are met') run into the first",
    "P227": "an Ofsted grade on the old seven-point scale beside a share",
    "P229": "'within the leading 25' is a rank, said with 'within'",
    "P230": "a group rule with a profile and level labels",
    "P243": "'1:50,000' is a map scale",
    "P290": "a bare '23' for a time measure names no unit",
    "P303": "an amber band with a condition on the trend",
    "P317": "a grade and a count of key lines of enquiry",
    "P318": "'an hour time window (half an hour either side)'",
    "P332": "'from 85kg to 90kg' is an old and a new target",
    "P352": "a first time limit with no share of its own",
}


def _polarity(row: dict[str, str]) -> str | None:
    if row["polarity"]:
        return row["polarity"]
    m = re.match(r"implies:(bigger|smaller|none)", row["notes"])
    return None if not m or m.group(1) == "none" else m.group(1)


def _read(row: dict[str, str], role: str = "target") -> Reading:
    return read_phrase(row["phrase"], _polarity(row), measure=row["measure"], role=role)


def _parts(r: Reading) -> list[Reading]:
    return list(r.parts) if r.parts else [r]


def _num(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip().lower()


def _split(text: str, n: int) -> list[str]:
    parts = text.split(";") if text else [""]
    return parts + [""] * (n - len(parts))


def _matches_label(row: dict[str, str], r: Reading) -> str | None:
    """None when ``r`` reads as the row's label says, else what differs."""
    if row["kind"] == "no_target":
        return None if r.kind == "no_target" else f"read as {r.kind}, not as no target"
    if row["kind"] == "milestone" and not row["threshold"]:
        return None if r.kind == "milestone" else f"read as {r.kind}, not as a milestone"
    if row["comparator"] == "between":
        lo, hi = (float(x) for x in row["threshold"].split(";"))
        got = (r.comparator, r.value, r.high, r.unit)
        return None if got == ("between", lo, hi, row["unit"]) else f"read as {got}"
    parts = _parts(r)
    n = max(len(row["comparator"].split(";")), len(row["threshold"].split(";")))
    if len(parts) != n:
        return f"read {len(parts)} part(s), the label has {n}"
    cmps, thrs = _split(row["comparator"], n), _split(row["threshold"], n)
    units, withins = _split(row["unit"], n), _split(row["within"], n)
    within_units = _split(row["within_unit"], n)
    for k, p in enumerate(parts):
        got_thr: float | str = p.grade.lower() if p.grade else ("" if p.value is None else p.value)
        if (p.comparator or "") != cmps[k]:
            return f"part {k + 1}: comparator {p.comparator!r}, label {cmps[k]!r}"
        want = _num(thrs[k]) if thrs[k] else ""
        if isinstance(want, float):
            if not isinstance(got_thr, float) or not math.isclose(got_thr, want, abs_tol=1e-9):
                return f"part {k + 1}: threshold {got_thr!r}, label {want!r}"
        elif got_thr != want:
            return f"part {k + 1}: threshold {got_thr!r}, label {want!r}"
        if units[k] and (p.unit or "") != units[k]:
            return f"part {k + 1}: unit {p.unit!r}, label {units[k]!r}"
        got_within = p.within
        if withins[k]:
            want_within = (float(withins[k]), within_units[k])
            if got_within is None or not (
                math.isclose(got_within[0], want_within[0]) and got_within[1] == want_within[1]
            ):
                return f"part {k + 1}: time limit {got_within}, label {want_within}"
        elif got_within is not None:
            return f"part {k + 1}: time limit {got_within}, the label has none"
    return None


def _describe(r: Reading) -> str:
    out = []
    for p in _parts(r):
        thr = (
            f"{p.value:g};{p.high:g}"
            if p.comparator == "between" and p.value is not None and p.high is not None
            else (p.grade or ("" if p.value is None else f"{p.value:g}"))
        )
        within = f"{p.within[0]:g} {p.within[1]}" if p.within else ""
        out.append(f"{p.comparator or ''}|{thr}|{p.unit or ''}|{within}")
    return ";".join(out)


def _names_words(message: str, phrase: str) -> bool:
    """Whether the refusal quotes words of the phrase (whitespace and case aside)."""
    flat = " ".join(re.sub(r"[‘’]", "'", phrase).lower().replace("—", " - ").split())
    flat = flat.replace("–", "-").replace("\u2011", "-")
    quoted = re.findall(r"'([^']{2,}?)'(?=[\s,;:.)]|$)", message)
    for q in quoted:
        q = " ".join(q.lower().split())
        if q and (q in flat or q.replace(" - ", "-") in flat.replace(" - ", "-")):
            return True
        if all(w in flat for w in q.split()):
            return True
    return False


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_every_real_phrasing_reads_as_labelled_or_is_refused_naming_its_words(row):
    rid = row["id"]
    if rid in DISAGREE:
        expected, _why = DISAGREE[rid]
        if expected.startswith("critical "):
            with pytest.raises(PhraseRefused):
                _read(row)
            assert _describe(_read(row, role="critical")) == expected.removeprefix("critical ")
        else:
            assert _describe(_read(row)) == expected
        return
    if row["expect"] == "refuse" or rid in STILL_REFUSED:
        with pytest.raises(PhraseRefused) as err:
            r = _read(row)
            pytest.fail(
                f"{rid} was read as {_describe(r)}; it should be refused"
            )  # pragma: no cover
        assert _names_words(str(err.value), row["phrase"]), str(err.value)
        return
    r = _read(row)
    problem = _matches_label(row, r)
    assert problem is None, f"{rid}: {problem} ({_describe(r)})"


def test_pass_rate():
    """Rows matching their label exactly (read right, or refused as labelled): 361 of 388."""
    matched = len(ROWS) - len(DISAGREE) - len(STILL_REFUSED)
    assert matched / len(ROWS) >= 0.92
    assert set(DISAGREE) | set(STILL_REFUSED) <= set(BY_ID)
    assert not set(DISAGREE) & set(STILL_REFUSED)
    assert all(BY_ID[i]["expect"] == "read" for i in STILL_REFUSED)


def test_the_table_is_as_its_readme_describes():
    assert len(ROWS) == 388
    assert sum(r["expect"] == "read" for r in ROWS) == 358
    assert len({r["source"] for r in ROWS}) == 121
