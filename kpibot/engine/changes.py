"""Targets measured against a reference: grades, benchmarks, last year, a baseline, the target.

Part of the target grammar (see ``kpibot.engine.reading``). Each reader takes one
:class:`~kpibot.engine.readings.Clause` and returns a ``Reading`` or None (not its kind):

* grades: "At least good", "Good or outstanding", "achieve Outstanding (Ofsted)";
* benchmarks: "> National average or 5% increase on current baseline whichever is greater";
* last year: "Improvement on previous year (53% 2014)";
* a relative tolerance: "within 10% of target", "90% of target";
* a change: "reduce by 15 per cent from the 400 days baseline", "a 2 per cent reduction against
  the previous year's outturn", "from 24 per cent to 17 per cent", "increase ... to 97,000".

A per cent change of something that is itself a percentage is refused: points and per cent
cannot be told apart.
"""

from __future__ import annotations

import re

from kpibot.engine.readings import (
    CHANGE,
    CHANGE_NOUNS,
    DURATION,
    GRADE_AND_FIGURE,
    INCREASE,
    MONEYISH,
    PCT_MEASURE,
    POINTS_OR_PERCENT,
    REDUCE,
    Clause,
    PhraseRefused,
    Reading,
    average_near,
    count_unit,
    directed,
    within_word,
)

_GRADE_WORDS = {
    "outstanding": "Outstanding",
    "good": "Good",
    "requires improvement": "Requires improvement",
    "satisfactory": "Satisfactory",
    "inadequate": "Inadequate",
}


GRADE_RANK = {"Outstanding": 4.0, "Good": 3.0, "Requires improvement": 2.0, "Satisfactory": 2.0}


def read_grade(ctx: Clause) -> Reading | None:
    """Ofsted-style grades: 'At least good', 'Good or outstanding', 'achieve Outstanding (Ofsted)'."""
    low = re.sub(r"['\"]", "", ctx.words())
    low = re.sub(r"\bri\b|\breq improvement\b", "requires improvement", low)
    found = sorted(
        (m.start(), name)
        for word, name in _GRADE_WORDS.items()
        for m in re.finditer(
            rf"\b{word}\b(?! (patent|cases?|debts?|appeals?|applications?|"
            r"claims?|work|balances?|items?|examinations?|invoices?))",
            low,
        )
    )
    if not found:
        return None
    qs = ctx.qtys()
    if qs:
        if any(ctx.toks[i].unit == "percent" for i in qs):
            return None  # "rated good or better: 80%" is a share, not a grade target
        if re.search(r"\b(outstanding|satisfactory|inadequate)\b", low) or "grade" in low:
            raise PhraseRefused(
                GRADE_AND_FIGURE.format(
                    grade=found[0][1], number=ctx.toks[qs[0]].text, text=ctx.text
                )
            )
        return None
    if re.search(r"\b(per cent|percentage|proportion|share)\b", low):
        return None
    names = [n for _, n in found]
    if re.search(r"\bfrom\b.*\bto\b", low) and len(names) >= 2:
        grade = names[-1]
        ctx.notes.append(f"'{names[0]}' is where it starts from")
    elif re.search(r"\bor\b", low) and len(set(names)) == 2:
        grade = min(names, key=lambda n: GRADE_RANK[n])
    elif len(set(names)) == 1:
        grade = names[0]
    else:
        raise PhraseRefused(
            f"'{ctx.text}' names several grades ({', '.join(names)}); write one, such as "
            "'at least Good'"
        )
    cmp = ">="
    if re.search(r"\b(at most|no better than|or worse)\b", low):
        cmp = "<="
    ctx.notes.append("grades rank Outstanding > Good > Requires improvement > Inadequate")
    return Reading(ctx.text, "grade", cmp, GRADE_RANK[grade], unit="grade", grade=grade)


_NATIONAL = re.compile(
    r"^(the )?(national|england|england and wales|regional) (average|mean|rate|figure)\b"
)


_BENCH_OPS = [
    (re.compile(r"^(>=|≥|=>)\s*"), ">="),
    (re.compile(r"^(<=|≤|=<)\s*"), "<="),
    (re.compile(r"^>\s*"), ">"),
    (re.compile(r"^<\s*"), "<"),
    (re.compile(r"^(more than|greater than|higher than|above|over|exceeding) "), ">"),
    (re.compile(r"^(less than|fewer than|lower than|below|under) "), "<"),
    (
        re.compile(
            r"^(at least|no less than|not less than|no worse than|minimum of|a minimum of) "
        ),
        "no-worse",
    ),
    (re.compile(r"^(at most|no more than|not more than|no better than) "), "no-better"),
]


_UPLIFT = re.compile(
    r"^or (?:an? )?(?P<pct>\d+(?:\.\d+)?)\s*(?:%|per ?cent) (?P<dir>increase|improvement|uplift|"
    r"decrease|reduction) (?:on|over|from|against) (?:the )?(?:current |existing |local )?baseline,?"
    r"\s*(?:whichever is (?P<which>greater|higher|larger|better|lower|less|smaller))?\s*$"
)


def _hint(ctx: Clause) -> tuple[float | None, str | None, str]:
    """'(53% 2014)', '(4.5% 13/14)': last year's figure written beside the words, and the rest."""
    toks = ctx.toks
    for i in ctx.idx():
        if toks[i].text != "(":
            continue
        j = next((k for k in range(i, ctx.hi) if toks[k].text == ")"), None)
        if j is None:
            continue
        inner = [k for k in range(i + 1, j) if toks[k].kind == "qty"]
        others = [k for k in range(i + 1, j) if toks[k].kind not in ("qty", "year")]
        if len(inner) == 1 and not others:
            ctx.used.add(inner[0])
            rest = " ".join(toks[k].text for k in ctx.idx() if not i <= k <= j)
            ctx.notes.append(f"'{toks[inner[0]].text}' beside the words is the baseline figure")
            return toks[inner[0]].value, toks[inner[0]].unit, rest
    return None, None, ctx.clause_text()


def read_benchmark(ctx: Clause) -> Reading | None:
    """'> National average or 5% increase on current baseline whichever is greater'."""
    if not _NATIONAL.search(
        re.sub(
            r"^\W+|^(at least|no worse than|above|below|more than|less than"
            r"|higher than|lower than|no less than) ",
            "",
            ctx.words(),
        )
    ):
        low = ctx.words()
        pct = next((ctx.toks[i] for i in ctx.qtys() if ctx.toks[i].unit == "percent"), None)
        if (
            pct is not None
            and re.search(r"\b(national|england)\b", low)
            and re.search(r"\b(ahead of|above|below|behind|more than|less than)\b", low)
        ):
            raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{pct.value:g}"))
        return None
    hint, hint_unit, rest = _hint(ctx)
    t = " ".join(rest.lower().split())
    cmp = None
    for pattern, sym in _BENCH_OPS:
        m = pattern.match(t)
        if m:
            cmp, t = sym, t[m.end() :]
            break
    m = _NATIONAL.match(t)
    if not m:
        return None
    tail = t[m.end() :].strip(" ,.")
    uplift = None
    combine = None
    if tail:
        mu = _UPLIFT.match(tail)
        if not mu:
            raise PhraseRefused(f"I could not read '{tail}' after the benchmark in '{ctx.text}'")
        sign = -1.0 if mu["dir"] in ("decrease", "reduction") else 1.0
        uplift = sign * float(mu["pct"])
        which = mu["which"] or ("greater" if ctx.polarity != "smaller" else "lower")
        if which == "better":
            which = "greater" if ctx.polarity != "smaller" else "lower"
        combine = "max" if which in ("greater", "higher", "larger") else "min"
        ctx.used.update(i for i in ctx.qtys() if ctx.toks[i].unit == "percent")
    return Reading(
        ctx.text,
        "benchmark",
        cmp,
        uplift,
        unit=hint_unit,
        baseline=hint,
        change=combine,
    )


def read_improvement(ctx: Clause) -> Reading | None:
    low = ctx.words()
    if re.match(
        r"^(an? )?(improvement|improve|improved|better performance) (on|over|from|against|"
        r"compared (with|to)) (the )?(previous|last|prior|preceding) (year|years|period)",
        low,
    ):
        hint, unit, rest = _hint(ctx)
        tail = re.sub(
            r"^(an? )?(improvement|improve|improved|better performance) (on|over|from|against|"
            r"compared (with|to)) (the )?(previous|last|prior|preceding) (year|years|period)"
            r"('s)?( figure| performance| result)?",
            "",
            " ".join(rest.lower().split()),
        ).strip(" ,.")
        if tail:
            raise PhraseRefused(f"I could not read '{tail}' after the words in '{ctx.text}'")
        return Reading(ctx.text, "improvement", unit=unit, baseline=hint)
    return None


def read_relative_tolerance(ctx: Clause) -> Reading | None:
    """'within 10% of target', '90% of target', 'within the 5% threshold'."""
    low = ctx.words()
    if not re.search(r"\b(target|threshold|tolerance|variance)\b", low):
        return None
    for i in ctx.qtys():
        t = ctx.toks[i]
        if t.unit != "percent":
            continue
        before = ctx.words_before(i, 3)
        after = ctx.words_after(i, 3)
        if "within" in before and (
            after[:2] in (["of", "target"], ["of", "the"]) or after[:1] in (["threshold"], [")"])
        ):
            ctx.used.add(i)
            _quarter_labels(ctx)
            ctx.notes.append(
                f"'{t.text}' is read as {t.value:g}% of the target's value, not "
                f"{t.value:g} percentage points"
            )
            return Reading(ctx.text, "tolerance_relative", "<=", t.value, unit="percent")
        if after[:2] == ["of", "target"] and not before:
            ctx.used.add(i)
            return Reading(ctx.text, "tolerance_share", ">=", t.value, unit="percent")
        if t.cmp in (">", ">=") and after[:1] == ["off"]:
            raise PhraseRefused(
                f"'{t.cmp_words} {t.text} off the target' in '{ctx.text}' sets a band with a "
                "condition I will not guess; write the tolerance as 'within N% of target'"
            )
    return None


def _quarter_labels(ctx: Clause) -> None:
    for i in ctx.qtys():
        if ctx.words_before(i, 1) == ["quarter"]:
            ctx.used.add(i)


def read_relative(ctx: Clause) -> Reading | None:
    """'reduce by 15 per cent from the 400 days baseline', 'a 2 per cent reduction', 'from A to B'."""
    toks = ctx.toks
    low = ctx.words()
    qs = ctx.qtys()
    r = _from_to(ctx, qs)
    if r is not None:
        return r
    verbs = [toks[i].low for i in ctx.idx() if toks[i].kind == "word" and toks[i].low in CHANGE]
    level = _level_compare(ctx, qs)
    if level is not None or not verbs:
        return level
    change = "reduction" if verbs[0] in REDUCE else "increase"
    if any(w in REDUCE for w in verbs) and any(w in INCREASE for w in verbs):
        reductions = [w for w in verbs if w in REDUCE]
        if "improve" in verbs and reductions:
            change = "reduction"
    pcts = [i for i in qs if toks[i].unit == "percent"]
    ends = [i for i in qs if ctx.words_before(i, 1) == ["to"] and not _is_limit_word(ctx, i)]
    # "by 1 per cent. to 87 per cent.", "to reduce net expenditure ... to £93,200,000": the level
    if len(ends) > 1:
        return _end_profile(ctx, ends, change)
    if ends:
        e = ends[-1]
        end = toks[e]
        for i in qs:
            if (
                i != e
                and toks[i].unit == "percent"
                and end.unit != "percent"
                or i != e
                and toks[i].unit == "percent"
                and ctx.words_before(i, 1) == ["by"]
            ):
                ctx.used.add(i)
                ctx.notes.append(f"'{toks[i].text}' restates the change to {end.text}")
        ctx.used.add(e)
        direction = "smaller" if change == "reduction" else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        value, unit = end.value, end.unit
        if unit in DURATION:
            value, unit = end.value, end.unit
        if unit == "count":
            unit = count_unit(ctx, e)[0]
        within = None
        for i in qs:
            if i != e and i not in ctx.used and toks[i].unit in DURATION and within_word(ctx, i):
                ctx.used.add(i)
                within = (toks[i].value or 0.0, toks[i].unit or "days")
        kind = "average" if average_near(ctx, e) else "threshold"
        return directed(
            ctx,
            Reading(ctx.text, kind, cmp, value, unit=unit, within=within),
            f"{verbs[0]} ... to {end.text}",
            direction,
        )
    if not pcts:
        if (
            change
            and len(qs) == 1
            and ctx.words_before(qs[0], 1) == ["by"]
            and toks[qs[0]].unit != "percent"
        ):
            return None
        return None
    ci = next((i for i in pcts if _change_near(ctx, i)), None)
    if ci is None:
        first_change = min(i for i in ctx.idx() if toks[i].kind == "word" and toks[i].low in CHANGE)
        if all(share_of(ctx, i) or toks[i].cmp or i < first_change for i in pcts):
            return None  # shares and levels ("100% parents with ... improvement"), read as figures
        if len(pcts) == 1 and not average_near(ctx, pcts[0]):
            raise PhraseRefused(
                f"I could not tell whether '{toks[pcts[0]].text}' in '{ctx.text}' is the level to "
                f"reach or the size of the {change}; write 'at least {toks[pcts[0]].text}' or "
                f"'a {toks[pcts[0]].text} {change}'"
            )
        return None
    cq = toks[ci]
    others = [i for i in pcts if i != ci and i not in ctx.used]
    if others:
        return None  # several changes: read clause by clause, or refused as unread
    ctx.used.add(ci)
    baseline_from = "baseline"
    if re.search(
        r"\b(previous|last|prior) year'?s?\b|\byear on year\b|\bin the year\b|\bper annum\b", low
    ):
        baseline_from = "previous_year"
    if PCT_MEASURE.search(low + " " + ctx.measure) and not MONEYISH.search(low):
        raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{cq.value:g}"))
    if ctx.unit == "percent":
        raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{cq.value:g}"))
    cmp = cq.cmp or ">="
    if cmp in ("<=", "<"):
        raise PhraseRefused(
            f"'{cq.cmp_words} {cq.text}' caps a {change} in '{ctx.text}'; I will not guess whether "
            "a bigger change is better"
        )
    baseline = _baseline_value(ctx, change, f"{cq.value:g}")
    against = "the previous year" if baseline_from == "previous_year" else "the baseline"
    ctx.notes.append(f"the figure compared is the % {change} against {against}")
    return directed(
        ctx,
        Reading(
            ctx.text,
            "relative",
            cmp,
            cq.value,
            unit="percent",
            change=change,
            baseline=baseline,
            baseline_from=baseline_from,
        ),
        change,
        "smaller" if change == "reduction" else "bigger",
        of_measure=True,
    )


def _end_profile(ctx: Clause, ends: list[int], change: str) -> Reading | None:
    """'reduce ... to 12 days by 2008-09 with an overall reduction to 11 days by 2009-10'."""
    toks = ctx.toks
    parts = []
    for e in ends:
        k = e + 1
        while k < ctx.hi and toks[k].kind in ("word", "per") and toks[k].low != "by":
            k += 1
        if not (k + 1 < ctx.hi and toks[k].low == "by" and toks[k + 1].kind in ("year", "date")):
            return None
        end = toks[e]
        direction = "smaller" if change == "reduction" else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        ctx.used.add(e)
        parts.append(
            directed(
                ctx,
                Reading(
                    ctx.text, "threshold", cmp, end.value, unit=end.unit, period=toks[k + 1].text
                ),
                f"{change} to {end.text}",
                direction,
            )
        )
    ctx.notes.append("a figure for each period: " + ", ".join(p.period or "" for p in parts))
    return Reading(ctx.text, "profile", parts=tuple(parts))


def _baseline_value(ctx: Clause, change: str, size: str) -> float | None:
    """The baseline figure the phrase states ('from the 400 days baseline'), if any."""
    for i in range(len(ctx.toks)):
        t = ctx.toks[i]
        if t.kind != "qty" or i not in ctx.used:
            continue
        if "baseline" in ctx.words_before(i, 4) or ctx.words_after(i, 1) == ["baseline"]:
            if t.unit == "percent":
                raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=size))
            return t.value
    return None


def _change_near(ctx: Clause, i: int) -> bool:
    """'by 15 per cent', 'a 26 per cent increase', 'a reduction ... of no less than 4%'.

    A figure with a comparator of its own after a change *verb* is the level to reach
    ('improve the timeliness ... not lower than 97 per cent'), not the size of the change.
    """
    before = [w for w in ctx.words_before(i, 10) if w not in (",", ".")]
    after = [w for w in ctx.words_after(i, 3) if w not in (",", ".")]
    if before[:1] == ["by"] or (before[:2] == ["average", "an"] and "by" in before):
        return True
    if after[:1] and after[0] in CHANGE:
        return True
    return before[:1] in (["of"], ["averaging"]) and any(w in CHANGE_NOUNS for w in before[1:10])


def share_of(ctx: Clause, i: int) -> bool:
    """'80% of its recipients', '90 percent, of search reports': a share, not a change."""
    after = [w for w in ctx.words_after(i, 2) if w != ","]
    return after[:1] == ["of"] and ctx.words_before(i, 1) != ["by"]


def _is_limit_word(ctx: Clause, i: int) -> bool:
    return ctx.toks[i].unit in DURATION and "within" in ctx.words_before(i, 3)


def _from_to(ctx: Clause, qs: list[int]) -> Reading | None:
    """'From 24 per cent to 17 per cent', 'increase from 81,000 to 97,000 the number of ...'."""
    toks = ctx.toks
    for a, b in zip(qs, qs[1:], strict=False):
        before_a = ctx.words_before(a, 4)
        if not (
            "from" in before_a[:1] or before_a[:3] == ["of", "baseline", "a"] and "from" in before_a
        ):
            continue
        mid = [toks[k].low for k in range(a + 1, b) if toks[k].kind in ("word", "punct")]
        if (
            "to" not in mid
            or len([w for w in mid if w not in ("to", "in", "by", ",")]) > 0
            and mid[-1] != "to"
        ):
            continue
        base, end = toks[a], toks[b]
        if (
            base.unit != end.unit
            or base.value is None
            or end.value is None
            or base.value == end.value
        ):
            continue
        if "target" in ctx.words().split()[:6]:
            return None
        ctx.used.update({a, b})
        direction = "smaller" if end.value < base.value else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        ctx.notes.append(f"'{base.text}' is the baseline it starts from")
        unit = end.unit if end.unit != "count" else count_unit(ctx, b)[0]
        return directed(
            ctx,
            Reading(ctx.text, "relative_level", cmp, end.value, unit=unit, baseline=base.value),
            f"from {base.text} to {end.text}",
            direction,
        )
    return None


def _level_compare(ctx: Clause, qs: list[int]) -> Reading | None:
    """'less than current levels', 'maintain ... at the level of 1998-99': a change of 0."""
    low = ctx.words()
    if qs:
        return None
    if re.search(r"\bimprovement\b.*\b(compared (with|to)|against|over)\b", low) and any(
        ctx.toks[k].kind == "year" for k in ctx.idx()
    ):
        ctx.notes.append("strictly better than the baseline year: a change of more than 0%")
        return directed(
            ctx,
            Reading(
                ctx.text,
                "relative",
                ">",
                0.0,
                unit="percent",
                change="increase",
                baseline_from="baseline",
            ),
            "improvement ... compared with",
            "bigger",
        )
    if re.search(r"\b(less|lower|fewer) than (the )?current levels?\b", low):
        ctx.notes.append("strictly below the baseline: a change of less than 0%")
        return directed(
            ctx,
            Reading(
                ctx.text,
                "relative",
                "<",
                0.0,
                unit="percent",
                change="reduction",
                baseline_from="baseline",
            ),
            "less than current levels",
            "smaller",
        )
    if re.search(r"\bmaintain\b.*\bat the level of\b", low) and any(
        t.kind == "year" for t in ctx.toks
    ):
        ctx.notes.append("kept at the baseline year's level: a change of at most 0%")
        return directed(
            ctx,
            Reading(
                ctx.text,
                "relative",
                "<=",
                0.0,
                unit="percent",
                change="increase",
                baseline_from="baseline",
            ),
            "maintain ... at the level of",
            ctx.polarity or "smaller",
        )
    return None
