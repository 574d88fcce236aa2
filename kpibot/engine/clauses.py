"""Reading one clause as figures: shares and their time limits, single figures, bands, profiles.

Part of the target grammar (see ``kpibot.engine.reading``). ``read_clause`` tries each kind of
reading in turn: the references of ``kpibot.engine.changes`` first, then figures. A share takes
the time limit that is part of its measure ("90% *within 15 working days*"); an average makes
its duration the threshold ("within an average of 40 working days"); several figures make a
compound, paired with their time limits in order; a figure per period makes a profile; a clause
with no figure may be a whole ("all work on time"), a zero ("no escapes") or a milestone
("By 31 January, to introduce ...").
"""

from __future__ import annotations

import re
from dataclasses import replace

from kpibot.engine.changes import (
    read_benchmark,
    read_grade,
    read_improvement,
    read_relative,
    read_relative_tolerance,
)
from kpibot.engine.phrases import Tok
from kpibot.engine.readings import (
    DURATION,
    POINTS_OR_PERCENT,
    TIME_ONLY,
    TWO_DEADLINES,
    UNPAIRED,
    UNREAD_NUMBER,
    Clause,
    PhraseRefused,
    Reading,
    all_words,
    average_near,
    check_polarity,
    count_unit,
    default_cmp,
    directed,
    is_average,
    resolve_cmp,
    thing_of,
    vague,
    within_word,
)


def read_clause(ctx: Clause) -> Reading | None:
    return (
        read_grade(ctx)
        or read_benchmark(ctx)
        or read_improvement(ctx)
        or read_relative_tolerance(ctx)
        or read_relative(ctx)
        or _profile(ctx)
        or _quantities(ctx)
        or read_whole(ctx)
        or _milestone(ctx)
    )


def _profile(ctx: Clause) -> Reading | None:
    """'Yr 1 80% Yr 2 85% Yr 3 90%', 'by 2003/04-75 per cent': a figure for each period."""
    toks = ctx.toks
    qs = ctx.qtys()
    labelled = []
    for i in qs:
        j = i - 1
        while j >= ctx.lo and toks[j].kind in ("punct",) and toks[j].text in ("-", ":"):
            j -= 1
        if j >= ctx.lo and toks[j].kind in ("period",):
            labelled.append((i, toks[j].text))
    if len(labelled) < 2 or len(labelled) != len(qs):
        return None
    parts = []
    for i, label in labelled:
        sub = ctx.clause(i, i + 1)
        r = _single(sub, i, [], average=False)
        parts.append(replace(r, period=label))
    ctx.notes.append("a figure for each period: " + ", ".join(p.period or "" for p in parts))
    return Reading(ctx.text, "profile", parts=tuple(parts))


def _quantities(ctx: Clause) -> Reading | None:
    toks = ctx.toks
    qs = ctx.qtys()
    if not qs:
        return None
    _refuse_unreadable(ctx, qs)
    r = _range(ctx, qs)
    if r is not None:
        return r
    shares = [i for i in qs if toks[i].unit == "percent"]
    remainder = _remainder(ctx)
    durations = [i for i in qs if toks[i].unit in DURATION]
    others = [i for i in qs if i not in shares and i not in durations]
    averages = [i for i in durations if average_near(ctx, i)]
    plain = [i for i in durations if i not in averages]
    has_share = bool(shares) or remainder is not None
    if not has_share:
        zero = _none_left(ctx, durations, qs)
        if zero is not None:
            return zero
    limits: list[int] = []
    thresholds_d: list[int] = []
    for i in plain:
        if (
            has_share
            or (all_words(ctx) and within_word(ctx, i))
            or (others and within_word(ctx, i))
        ):
            limits.append(i)
        else:
            thresholds_d.append(i)
    thresholds_d += averages
    if not has_share and not others and thresholds_d:
        if not averages and not is_average(ctx):
            for i in thresholds_d:
                if within_word(ctx, i) and toks[i].cmp is None:
                    if all_words(ctx) and len(thresholds_d) == 1:
                        return _share_all(ctx, [i])
                    if ctx.unit in DURATION and len(thresholds_d) == 1:
                        # The KPI's figures are themselves times ('unit: hours'): 'within 4
                        # hours' is the most a figure may be, not a limit needing a share.
                        return _single(ctx, i, [], average=False)
                    raise PhraseRefused(TIME_ONLY.format(text=ctx.text, limit=toks[i].text))
        if len(thresholds_d) == 1:
            return _single(ctx, thresholds_d[0], [], average=bool(averages) or is_average(ctx))
        return _compound(ctx, sorted(thresholds_d), [], average=True)
    if has_share:
        primaries = sorted(shares + ([remainder] if remainder is not None else []), key=_position)
        if others:
            return _compound(ctx, sorted(primaries + others + thresholds_d, key=_position), limits)
        if thresholds_d:
            return _compound(ctx, sorted(primaries + thresholds_d, key=_position), limits)
        if len(primaries) == 1:
            return _share(ctx, primaries[0], limits)
        return _compound(ctx, primaries, limits)
    if not others and not thresholds_d:
        if limits and all_words(ctx):
            return _share_all(ctx, limits)
        return None
    # counts, money, rates, scores
    if len(others) == 1 and not thresholds_d:
        return _single(ctx, others[0], limits, average=is_average(ctx))
    return _compound(ctx, sorted(others + thresholds_d), limits)


def _refuse_unreadable(ctx: Clause, qs: list[int]) -> None:
    """Figures whose meaning a reading cannot settle: refused before anything is read."""
    toks = ctx.toks
    if re.search(r"\brecover full\b|\bfull (cost )?recovery\b", ctx.words()):
        raise PhraseRefused(UNREAD_NUMBER.format(number=toks[qs[0]].text, text=ctx.text))
    for i in qs:
        after = " ".join(ctx.words_after(i, 3))
        if toks[i].unit == "percent" and re.match(r"(ahead of|behind|above|below) ", after):
            raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{toks[i].value:g}"))
        if ctx.words_before(i, 2) == ["of", "instead"]:
            raise PhraseRefused(
                f"'{toks[i].text}' after 'instead of' in '{ctx.text}' is an old target; give only "
                "the target that applies"
            )
        if toks[i].unit == "count" and within_word(ctx, i) and ctx.words_before(i, 1) != ["in"]:
            after = next(
                (
                    toks[k].text
                    for k in range(i + 1, min(len(toks), i + 4))
                    if toks[k].kind == "word"
                ),
                "",
            )
            raise PhraseRefused(
                f"I could not tell what 'within {toks[i].text} {after}' measures in "
                f"'{ctx.text}'; give a time limit in seconds, minutes, hours or days"
            )


def _none_left(ctx: Clause, durations: list[int], qs: list[int]) -> Reading | None:
    """'Clear all ... older than 49 months' (none left), 'with none taking more than 30 minutes'."""
    toks = ctx.toks
    if re.search(r"\bclear all\b", ctx.words()):
        older = [i for i in durations if toks[i].cmp in (">", ">=")]
        if len(older) == 1 and len(qs) == 1:
            i = older[0]
            ctx.used.add(i)
            ctx.notes.append(f"'clear all' means none left older than {toks[i].text}")
            return directed(
                ctx,
                Reading(
                    ctx.text,
                    "milestone",
                    "<=",
                    0.0,
                    unit="count",
                    within=(toks[i].value or 0.0, toks[i].unit or "days"),
                    beyond=True,
                ),
                "clear all",
                "smaller",
            )
    if ctx.has_word("none"):
        beyond = [i for i in durations if toks[i].cmp in (">", ">=")]
        if len(beyond) == 1 and len(qs) == 1:
            i = beyond[0]
            ctx.used.add(i)
            ctx.notes.append(f"'none' means 0% of cases beyond {toks[i].text}")
            return Reading(
                ctx.text,
                "threshold",
                "<=",
                0.0,
                unit="percent",
                within=(toks[i].value or 0.0, toks[i].unit or "days"),
                beyond=True,
            )
    return None


def _position(i: int) -> int:
    """A primary's token position (the remainder marker -i-1 stands for the word at i)."""
    return -i - 1 if i < 0 else i


def _remainder(ctx: Clause) -> int | None:
    """'(remainder within 20 working days)': the rest, so 100% by then. Returns the limit's index."""
    toks = ctx.toks
    for i in ctx.idx():
        if toks[i].low in ("remainder", "rest") and i not in ctx.used:
            nxt = next((k for k in range(i + 1, ctx.hi) if toks[k].kind == "qty"), None)
            if nxt is not None and toks[nxt].unit in DURATION:
                return -i - 1  # a marker: the share is the word at i
    return None


def _range(ctx: Clause, qs: list[int]) -> Reading | None:
    """'50-75%', 'between 0.7 and 1.0', '100-90%', '99.8 % - 99.89%', '1-4 hours'."""
    toks = ctx.toks
    if len(qs) != 2:
        return None
    a, b = qs
    mid = [toks[k] for k in range(a + 1, b)]
    if not (len(mid) == 1 and mid[0].low in ("-", "to", "and")):
        return None
    lo_t, hi_t = toks[a], toks[b]
    if mid[0].low == "and" and "between" not in ctx.words_before(a, 1):
        return None
    unit = hi_t.unit
    if lo_t.unit not in (unit, "count"):
        return None
    lo, hi = sorted([lo_t.value or 0.0, hi_t.value or 0.0])
    if lo_t.cmp or hi_t.cmp:
        return None
    ctx.used.update({a, b})
    if unit == "count":
        unit = count_unit(ctx, b)[0]
    within = None
    for i in ctx.qtys():
        if toks[i].unit in DURATION and within_word(ctx, i):
            ctx.used.add(i)
            within = (toks[i].value or 0.0, toks[i].unit or "days")
    if (lo_t.value or 0) > (hi_t.value or 0):
        ctx.notes.append("the band is written high to low")
    return Reading(ctx.text, "range", "between", lo, hi, unit=unit, within=within)


def _share(ctx: Clause, i: int, limits: list[int]) -> Reading:
    toks = ctx.toks
    if i < 0:  # the remainder: every case by the limit
        ctx.notes.append("'remainder' means every case by then: 100%")
        t = Tok("qty", "remainder", 100.0, "percent")
    else:
        t = toks[i]
        ctx.used.add(i)
    within = None
    beyond = False
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(
                text=ctx.text,
                shares=1,
                limits=len(limits),
                example=f"at least {t.text} within {toks[limits[0]].text}",
            )
        )
    if limits:
        li = limits[0]
        ctx.used.add(li)
        lt = toks[li]
        within = (lt.value or 0.0, lt.unit or "days")
        beyond = lt.cmp in (">", ">=") and (lt.cmp_words or "").lower() != "within"
        if beyond:
            ctx.notes.append(f"the share counts cases beyond {lt.text}")
        if "further" in ctx.words_before(li, 2):
            prev = _previous_limit(ctx, li)
            if "remaining" not in ctx.words().split():
                raise PhraseRefused(
                    f"'a further {lt.text}' in '{ctx.text}' could run from the start or from the "
                    "first limit; write each limit from the same start"
                )
            if prev is not None:
                within = (within[0] + prev[0], within[1])
                ctx.notes.append(f"'a further {lt.text}' is added to the first limit")
    if t.low.startswith("remaining") or "remaining" in ctx.words_before(i, 2) and i >= 0:
        ctx.notes.append(f"'the remaining {t.text}' means every case by then: 100%")
        t = replace(t, value=100.0)
    cmp = resolve_cmp(t.cmp, ctx.polarity, t.cmp_words)
    words = t.cmp_words
    if cmp is None:
        cmp, words = default_cmp(ctx, t, beyond if within is not None else None)
    r = Reading(ctx.text, "threshold", cmp, t.value, unit="percent", within=within, beyond=beyond)
    return check_polarity(ctx, r, words)


def _previous_limit(ctx: Clause, li: int) -> tuple[float, str] | None:
    for k in range(li - 1, -1, -1):
        t = ctx.toks[k]
        if t.kind == "qty" and t.unit == ctx.toks[li].unit:
            return (t.value or 0.0, t.unit or "days")
    return None


def _share_all(ctx: Clause, limits: list[int]) -> Reading:
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(text=ctx.text, shares=1, limits=len(limits), example="100% within ...")
        )
    ctx.notes.append("'all' means 100%")
    ctx.used.update(limits)
    lt = ctx.toks[limits[0]]
    return check_polarity(
        ctx,
        Reading(
            ctx.text,
            "threshold",
            ">=",
            100.0,
            unit="percent",
            within=(lt.value or 0.0, lt.unit or "days"),
        ),
        "all",
    )


def _single(ctx: Clause, i: int, limits: list[int], average: bool) -> Reading:
    t = ctx.toks[i]
    ctx.used.add(i)
    within = None
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(text=ctx.text, shares=1, limits=len(limits), example=f"{t.text}")
        )
    if limits:
        ctx.used.add(limits[0])
        lt = ctx.toks[limits[0]]
        within = (lt.value or 0.0, lt.unit or "days")
    cmp = resolve_cmp(t.cmp, ctx.polarity, t.cmp_words)
    words = t.cmp_words
    if cmp is None:
        cmp, words = default_cmp(ctx, t)
    unit = t.unit
    per = t.per
    if unit == "count":
        unit, per = count_unit(ctx, i)
    if unit == "times":
        unit = "rate"
    if unit == "days" and _loose_working_days(ctx):
        unit = "working_days"
        ctx.notes.append("'days' are working days, as the lead-in says")
    kind = "average" if average else "threshold"
    thing = thing_of(ctx, i) if unit in ("count", "rate") else None
    r = Reading(ctx.text, kind, cmp, t.value, unit=unit, per=per, within=within, thing=thing)
    return check_polarity(ctx, r, words)


def _loose_working_days(ctx: Clause) -> bool:
    """'within an average number of working days: IB 15 days, IS 10 days' (the lead-in's unit)."""
    toks = ctx.toks
    for k, t in enumerate(toks):
        if t.low == "working" and k + 1 < len(toks) and toks[k + 1].low == "days":
            return True
    return False


def _compound(
    ctx: Clause, primaries: list[int], limits: list[int], average: bool = False
) -> Reading:
    toks = ctx.toks
    if len(primaries) == 1:
        i = primaries[0]
        if i < 0 or toks[i].unit == "percent":
            return _share(ctx, i, limits)
        return _single(ctx, i, limits, average or is_average(ctx))
    units = {("percent" if i < 0 else toks[i].unit) for i in primaries}
    if len(units) > 1 and not average:
        shares = {"percent"}
        timed = {u for u in units if u in DURATION}
        mixed_ok = units <= shares | timed and all(
            average_near(ctx, i) for i in primaries if i >= 0 and toks[i].unit in DURATION
        )
        if not mixed_ok and not all(i >= 0 and toks[i].cmp for i in primaries):
            odd = next(
                (i for i in primaries if i >= 0 and toks[i].unit not in ("percent", "gbp")),
                primaries[-1],
            )
            raise PhraseRefused(UNREAD_NUMBER.format(number=toks[odd].text, text=ctx.text))
    for a, b in zip(primaries, primaries[1:], strict=False):
        if a >= 0 and b >= 0:
            mid = [toks[k].low for k in range(a + 1, b) if toks[k].kind == "word"]
            if mid and mid[-1] == "to" and "from" in ctx.words_before(a, 3):
                raise PhraseRefused(
                    f"'from {toks[a].text} to {toks[b].text}' in '{ctx.text}' could be a baseline "
                    "and a target or an old and a new target; give only the target that applies"
                )
    parts = []
    pairing = _pair(ctx, primaries, limits)
    for i in primaries:
        lim = pairing.get(i, [])
        t = toks[i] if i >= 0 else None
        if t is not None and t.cmp is None and primaries[0] >= 0 and toks[primaries[0]].cmp:
            first = toks[primaries[0]]
            if first.unit == t.unit:
                toks[i] = replace(t, cmp=first.cmp, cmp_words=first.cmp_words)
        if i < 0 or toks[i].unit == "percent":
            parts.append(_share(ctx, i, lim))
        else:
            parts.append(_single(ctx, i, lim, average or average_near(ctx, i)))
    return Reading(ctx.text, "compound", parts=tuple(parts))


def _pair(ctx: Clause, primaries: list[int], limits: list[int]) -> dict[int, list[int]]:
    """Pair figures with time limits: in order when they match in number, else shared."""
    if not limits:
        return {}
    primaries = [
        i for i in primaries if i < 0 or not (ctx.toks[i].unit in DURATION and average_near(ctx, i))
    ]
    pos = [(-i - 1 if i < 0 else i) for i in primaries]
    if len(limits) == len(primaries):
        return {p: [lim] for p, lim in zip(primaries, limits, strict=True)}
    if len(limits) == 1:
        li = limits[0]
        if li > max(pos) or li < min(pos):
            return {p: [li] for p in primaries}
        owner = max((p for p, x in zip(primaries, pos, strict=True) if x < li), key=lambda p: p)
        return {owner: [li]}
    if len(limits) == len(primaries) + 1 and limits[0] < min(pos):
        raise PhraseRefused(
            UNPAIRED.format(
                text=ctx.text,
                shares=len(primaries),
                limits=len(limits),
                example=f"100% within {ctx.toks[limits[0]].text}",
            )
        )
    raise PhraseRefused(
        UNPAIRED.format(
            text=ctx.text,
            shares=len(primaries),
            limits=len(limits),
            example=f"at least {ctx.toks[primaries[0]].text} within {ctx.toks[limits[0]].text}",
        )
    )


def read_whole(ctx: Clause) -> Reading | None:
    """'To deliver all work on time' (100%), 'no escapes' (none), 'a balanced outturn' (£0 over)."""
    low = ctx.words()
    if ctx.qtys():
        return None
    if re.search(r"\bno (escapes?|excess|missed|failures?|breaches)\b", low):
        ctx.notes.append("'no' means none: a ceiling of zero")
        unit = "gbp" if re.search(r"\bno excess\b", low) else "count"
        return Reading(
            ctx.text, "threshold", "<=", 0.0, unit=unit, direction="smaller", direction_words="no"
        )
    if re.search(r"\bnone (taking|waiting|longer|more)\b", low):
        return None
    if re.search(r"\bclear all\b", low):
        limit = [i for i in range(len(ctx.toks)) if ctx.toks[i].kind == "qty"]
        ctx.notes.append("'clear all' means none left")
        return (
            directed(
                ctx, Reading(ctx.text, "milestone", "<=", 0.0, unit="count"), "clear all", "smaller"
            )
            if not limit
            else None
        )
    if re.search(r"\b(all|every)\b.*\b(on time|to time|in full|to timescale|in timescale)\b", low):
        ctx.notes.append("'all' means 100%")
        return directed(
            ctx, Reading(ctx.text, "threshold", ">=", 100.0, unit="percent"), "all", "bigger"
        )
    if re.search(r"\brecover full\b|\bfull (cost )?recovery\b", low):
        ctx.notes.append("'full' means 100%")
        return directed(
            ctx, Reading(ctx.text, "threshold", ">=", 100.0, unit="percent"), "full", "bigger"
        )
    if re.search(r"\bbalanced (revenue )?(budget|outturn)\b", low):
        ctx.notes.append("'balanced' means no overspend: a variance of at most £0 (signed)")
        return replace(
            Reading(ctx.text, "threshold", "<=", 0.0, unit="gbp"),
            direction="smaller",
            direction_words="balanced",
        )
    return None


_MILESTONE_VERB = re.compile(
    r"^(to )?(implement|introduce|publish|lay|undergo|commence|be able|bring into force|"
    r"bringing into force|achieve$|"
    r"make [a-z ]+ available)\b"
)


def _milestone(ctx: Clause) -> Reading | None:
    """A deliverable with a due date: 'By 31 January, to introduce ...', 'Implement the Act'."""
    toks = ctx.toks
    if ctx.qtys():
        return None
    low = ctx.words()
    if re.search(r"\b(on ?-? ?time)\b", low) and not re.search(r"\b(all|every|deliver)\b", low):
        ctx.notes.append("'on time' means zero days late")
        return Reading(ctx.text, "milestone", "<=", 0.0, unit="days")
    dates = [toks[i] for i in ctx.idx() if toks[i].kind == "date"]
    deadline = bool(dates) or bool(re.search(r"\bprior to the\b|\bby (the )?end\b", low))
    verb = _MILESTONE_VERB.search(low)
    if vague(ctx) or re.search(r"\b(less|more|fewer|higher|lower) than\b", low):
        return None
    if not (deadline or verb):
        return None
    if len(dates) > 1 and len({d.text for d in dates}) > 1 and not re.search(r"\bfrom\b", low):
        raise PhraseRefused(TWO_DEADLINES.format(text=ctx.text, n=len(dates)))
    due = dates[-1].when if dates else None
    due_text = dates[-1].text if dates else None
    if due_text and not re.search(r"\b(19|20)\d\d\b", due_text):
        ctx.notes.append(f"'{due_text}' gives no year: the contract year decides it")
        due = None
    return Reading(
        ctx.text,
        "milestone",
        "==" if low.strip() == "achieve" else None,
        due=due,
        due_text=due_text,
    )
