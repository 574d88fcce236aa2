"""The words of target phrases: number words, units, months, labels and comparators.

Used by ``kpibot.engine.phrases`` (the lexer). Comparator phrases map to a symbol: ``>=``,
``>``, ``<=``, ``<``, or ``better``/``worse``/``no-worse``/``no-better``, which follow the KPI's
polarity ("better than 94 per cent").

>>> NUMBER_WORDS["twelve"], TIME_UNITS["weeks"], MONTHS["sept"]
(12, ('weeks', 1.0), 9)
"""

from __future__ import annotations

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
_ONES += " fifteen sixteen seventeen eighteen nineteen"
NUMBER_WORDS = {w: i for i, w in enumerate(_ONES.split())}
NUMBER_WORDS.update(
    {
        w: 10 * i
        for i, w in enumerate(
            ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
        )
    }
)
NUMBER_WORDS["nil"] = 0
# Words that multiply the number before them ("£3 million", "10.50 million titles").
SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "millions": 1e6}
SCALES.update({"bn": 1e9, "billion": 1e9})
# Time units: the word as written → the unit code, and its size in that code (years → months).
_TIME_SPELLINGS = {
    "seconds": "second seconds sec secs",
    "minutes": "minute minutes min mins",
    "hours": "hour hours hr hrs",
    "days": "day days",
    "weeks": "week weeks wk wks",
    "months": "month months",
}
TIME_UNITS = {w: (code, 1.0) for code, words in _TIME_SPELLINGS.items() for w in words.split()}
TIME_UNITS.update({"year": ("months", 12.0), "years": ("months", 12.0)})
TIME_CODES = ("seconds", "minutes", "hours", "days", "working_days", "weeks", "months")
_MONTH_NAMES = (
    "january/jan february/feb march/mar april/apr may june/jun july/jul august/aug "
    "september/sep/sept october/oct november/nov december/dec"
)
MONTHS = {n: i for i, names in enumerate(_MONTH_NAMES.split(), 1) for n in names.split("/")}
# Words after which a four-digit number from 1950 to 2099 is a year ("by 2003", "Act 2002").
YEAR_LEADS = set(
    [
        "in",
        "by",
        "during",
        "since",
        "before",
        "after",
        "until",
        "till",
        "of",
        "year",
        "years",
        "fy",
        "act",
        "compared",
        "with",
        "against",
        "from",
        "to",
        "between",
        "and",
        "the",
        "end",
        "summer",
        "spring",
        "autumn",
        "winter",
    ]
) | {m for m in MONTHS if len(m) > 3 or m == "may"}
# A number right after one of these words is the thing's name, not a quantity ("stage 2").
LABEL_WORDS = set(
    [
        "stage",
        "stages",
        "category",
        "categories",
        "section",
        "sections",
        "level",
        "levels",
        "pillar",
        "radio",
        "tier",
        "tiers",
        "phase",
        "phases",
        "priority",
        "priorities",
        "schedule",
        "clause",
        "table",
        "appendix",
        "annex",
        "part",
        "paragraph",
        "para",
        "kpi",
        "kpis",
        "pi",
        "ni",
        "indicator",
        "indicators",
        "imd",
        "decile",
        "deciles",
        "band",
        "grade",
        "grades",
        "standard",
        "point",
    ]
) | {"key stage", "key stages", "key target", "target number"}


def split_words(words: str) -> list[str]:
    if words in (">=", "=>", "<=", "=<"):
        return list(words)
    return words.split()


# Comparator phrases, longest first within each list. ``better``/``worse`` follow polarity.
def _comparator_table(*pairs: str) -> list[tuple[str, str]]:
    """(words, symbol) pairs from ``symbol, "words | words | ..."`` arguments, longest first."""
    out = [
        (words.strip(), sym)
        for sym, phrases in zip(pairs[::2], pairs[1::2], strict=True)
        for words in phrases.split("|")
    ]
    return sorted(out, key=lambda p: (-len(split_words(p[0])), -len(p[0])))


PREFIX_CMPS = _comparator_table(
    ">=",
    "at or above | on or above | equal to or more than | equal to or greater than | "
    "greater than or equal to | more than or equal to | as a minimum | a minimum of | "
    "minimum of | at least | no less than | not less than | no fewer than | "
    "not fewer than | no lower than | not lower than | minimum | min | >= | => | ≥",
    "<=",
    "at or below | on or below | equal to or less than | less than or equal to | "
    "a maximum of | maximum of | at most | no more than | not more than | "
    "no greater than | not greater than | no higher than | not higher than | "
    "no longer than | not longer than | no later than | not later than | "
    "not to exceed | not exceed | does not exceed | do not exceed | did not exceed | "
    "not exceeding | up to | maximum | max | <= | =< | ≤",
    "no-worse",
    "no worse than | not worse than",
    "no-better",
    "no better than",
    ">",
    "more than | greater than | higher than | longer than | older than | in excess of | "
    "exceeding | to exceed | exceed | above | over | >",
    "better",
    "better than",
    "worse",
    "worse than",
    "<",
    "less than | fewer than | lower than | shorter than | below | under | <",
)
SUFFIX_CMPS = _comparator_table(
    ">=",
    "or more | or over | or above | and above | and over | or higher | or greater | "
    "minimum | min | at least | +",
    "no-worse",
    "or better",
    "<=",
    "or less | or fewer | or below | and below | or under | and under | or lower | "
    "maximum | max | at most",
    "no-better",
    "or worse",
)

FILLERS = set(
    [
        "a",
        "an",
        "the",
        "of",
        "ratio",
        "scale",
        "rating",
        "index",
        "value",
        "level",
        "total",
        "score",
        "figure",
        "average",
        "mean",
    ]
)
