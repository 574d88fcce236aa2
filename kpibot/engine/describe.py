"""Words and numbers for people: values in their units, RAG dots, trend arrows, money.

>>> format_value(95.0, "percent"), format_value(1620, "count"), format_value(141, "days")
('95%', '1,620', '141 days')
"""

from __future__ import annotations

import math
from decimal import Decimal

from kpibot.engine.evaluate import TREND_ARROWS
from kpibot.engine.targets import GRADE_NAMES

RAG_DOT = {"green": "🟢", "amber": "🟠", "red": "🔴", "grey": "⚪"}
RAG_ORDER = {"red": 0, "amber": 1, "green": 2, "grey": 3}
POSITION_WORDS = {
    "met": "met",
    "within_tolerance": "within tolerance",
    "not_met": "not met",
    "no_target": "no target",
    "missing": "missing",
}


def format_value(value: float | None, unit: str) -> str:
    """A value in its unit; '—' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "grade":
        return GRADE_NAMES.get(float(value), f"{value:g}")
    rounded = round(float(value), 1)
    text = f"{rounded:,.1f}".rstrip("0").rstrip(".")
    if unit == "percent":
        return f"{text}%"
    if unit == "days":
        return f"{text} days"
    if unit in _TIME_WORDS:
        return f"{text} {_TIME_WORDS[unit]}"
    if unit == "gbp":
        return f"£{float(value):,.0f}" if abs(float(value)) >= 100 else f"£{text}"
    if unit == "milestone":
        return "achieved" if float(value) >= 1 else "not achieved"
    return text


_TIME_WORDS = {
    "working_days": "working days",
    "weeks": "weeks",
    "months": "months",
    "hours": "hours",
    "minutes": "minutes",
    "seconds": "seconds",
}


def trend_text(trend: str) -> str:
    return f"{TREND_ARROWS.get(trend, '')} {trend}".strip()


def money(amount: Decimal | float, currency: str = "GBP") -> str:
    symbol = {"GBP": "£", "EUR": "€", "USD": "$"}.get(currency, "")
    return f"{symbol}{float(amount):,.0f}"
