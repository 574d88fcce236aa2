"""Quarterly expenditure statements and the >15% exception report (seed 003, 5d), on SQLite and
PostgreSQL: the exact boundary, bad input as one sentence, reminders until the report is in."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from kpibot.commands.bot import Bot
from kpibot.commands.expenditure import parse_args
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.engine.model import Contract
from kpibot.engine.numbers import NumberStyle
from kpibot.engine.reminders import Message
from kpibot.features.expenditure import (
    AlreadyStated,
    BadPeriod,
    ExpenditureLedger,
    ReportRefused,
    check_quarter,
    exceeds,
    finance_messages,
    finance_summary,
    money,
    parse_money,
    read_money,
    variance_pct,
)
from tests.conftest import FixedClock

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2020, 2, 20, 10, 0, tzinfo=LONDON)
CONTRACT = "childrens-trust"
Q1, Q2, Q3 = "2019/20 Q1", "2019/20 Q2", "2019/20 Q3"


def london(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=LONDON)


def ask(bot: Bot, line: str, user: str = "U-TRUST") -> Reply:
    return bot.handle(Request.from_text(line, user=user, platform="console"))


def one_sentence(reply: Reply) -> str:
    assert not reply.ok, reply.plain()
    assert reply.text.endswith(".") and "\n" not in reply.text and "Traceback" not in reply.text
    return reply.text


# ------------------------------------------------------------------------ the arithmetic


@pytest.mark.parametrize(
    ("actual", "expected", "pct", "required"),
    [
        ("115000", "100000", "15", False),  # exactly 15% over: within
        ("115010", "100000", "15.01", True),  # 15.01% over: exception
        ("85000", "100000", "-15", False),  # exactly 15% under: within
        ("84990", "100000", "-15.01", True),  # 15.01% under: exception
        ("100000", "100000", "0", False),
        ("0", "0", "0", False),
        ("10", "0", None, True),  # spend against nothing projected always needs explaining
    ],
)
def test_variance_at_the_15_percent_boundary(
    actual: str, expected: str, pct: str | None, required: bool
) -> None:
    a, e = Decimal(actual), Decimal(expected)
    assert variance_pct(a, e) == (None if pct is None else Decimal(pct))
    assert exceeds(a, e, Decimal(15)) is required


@given(
    actual=st.integers(0, 10**11), expected=st.integers(1, 10**11), threshold=st.integers(0, 100)
)
def test_exceeds_is_exact_in_pence(actual: int, expected: int, threshold: int) -> None:
    exact = abs(Fraction(actual - expected, expected)) * 100 > threshold
    assert exceeds(Decimal(actual) / 100, Decimal(expected) / 100, Decimal(threshold)) is exact


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("£120,000", Decimal("120000")),
        ("120000.50", Decimal("120000.50")),
        ("£1.2m", Decimal("1200000")),
        ("480k", Decimal("480000")),
        ("GBP 12", Decimal("12")),
        ("£-5", None),
        ("12,34", None),
        ("lots", None),
        ("", None),
    ],
)
def test_amounts(text: str, amount: Decimal | None) -> None:
    assert parse_money(text) == amount


def test_money_and_tags() -> None:
    assert (money(Decimal("115010")), money(Decimal("12.5"))) == ("£115,010", "£12.50")
    parsed = parse_args(["actual:£115,010", "projected:", "£100k", "Agency", "cover"])
    assert not isinstance(parsed, str)
    assert (parsed.actual, parsed.projected, parsed.reasons) == (
        Decimal("115010"),
        Decimal("100000"),
        "Agency cover",
    )
    assert (
        parse_args(["actual:lots"])
        == "'lots' is not an amount I can read; write it like £120,000 or 120000.50."
    )


# ------------------------------------------------------------------------ the ledger


def ledger_with_q2(
    services: Services, seed_contracts: dict[str, Contract], projected: str = "100000"
) -> ExpenditureLedger:
    ledger = ExpenditureLedger(services)
    contract = seed_contracts[CONTRACT]
    ledger.record(
        contract, contract.parse_period(Q2), Decimal("98000"), Decimal(projected), "U-TRUST", NOW
    )
    return ledger


@pytest.mark.parametrize(("actual", "required"), [("115000", False), ("115010", True)])
def test_a_statement_is_compared_with_the_previous_projection(
    services: Services, seed_contracts: dict[str, Contract], actual: str, required: bool
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger = ledger_with_q2(services, seed_contracts)
    v = ledger.record(
        contract, contract.parse_period(Q3), Decimal(actual), Decimal("90000"), "U-TRUST", NOW
    )
    assert v.expected == Decimal("100000") and v.previous is not None and v.previous.period == Q2
    assert (v.required, v.outstanding) == (required, required)
    first = ledger.variance(contract, contract.parse_period(Q2))
    assert first is not None and first.expected is None and not first.required
    assert [x.statement.period for x in ledger.outstanding(contract)] == ([Q3] if required else [])
    actions = [(e.action, e.outcome) for e in services.audit.recent(5, CONTRACT)]
    assert actions[:2] == [("expenditure", "ok"), ("expenditure", "ok")]


def test_the_threshold_is_configurable(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger_with_q2(services, seed_contracts)
    ExpenditureLedger(services).record(
        contract, contract.parse_period(Q3), Decimal("110000"), Decimal("1"), "U-TRUST", NOW
    )
    assert not ExpenditureLedger(services).variances(contract)[-1].required
    strict = ExpenditureLedger(services, threshold_pct=Decimal("9.99"))
    assert strict.variances(contract)[-1].required and strict.threshold_for(contract) == Decimal(
        "9.99"
    )


def test_a_contract_can_set_its_own_threshold(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    psychology = seed_contracts["one-psychology"]
    terms = psychology.payments.finance_exception
    assert terms is not None and terms.clause == "5d"
    ledger = ExpenditureLedger(services)
    assert ledger.threshold_for(psychology) == Decimal(15)  # seed 003, 5d, from its contract file
    assert ledger.threshold_for(seed_contracts[CONTRACT]) == Decimal(15)  # the default
    tighter = psychology.model_copy(
        update={
            "payments": psychology.payments.model_copy(
                update={"finance_exception": terms.model_copy(update={"variance_percent": 12.5})}
            )
        }
    )
    assert ledger.threshold_for(tighter) == Decimal("12.5")


def test_an_exception_report_needs_all_three_parts(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger = ledger_with_q2(services, seed_contracts)
    q1, q2, q3 = (contract.parse_period(p) for p in (Q1, Q2, Q3))
    with pytest.raises(ReportRefused, match=f"no expenditure statement for {Q3} yet"):
        ledger.file_exception(contract, q3, "Why", "What", Decimal(1), "U-TRUST", NOW)
    with pytest.raises(ReportRefused, match="within 15% of its projection"):
        ledger.file_exception(contract, q2, "Why", "What", Decimal(1), "U-TRUST", NOW)
    ledger.record(contract, q3, Decimal("130000"), Decimal("90000"), "U-TRUST", NOW)
    with pytest.raises(ReportRefused) as refused:
        ledger.file_exception(contract, q3, "Agency cover", " ", None, "U-TRUST", NOW)
    assert str(refused.value).startswith(
        f"The exception report for {Q3} needs the corrective measures taken and the re-profiled annual budget;"
    )
    v = ledger.file_exception(
        contract, q3, "Agency cover", "Two posts filled", Decimal("460000"), "U-TRUST", NOW
    )
    assert v.report is not None and not v.outstanding and v.report.budget == Decimal("460000")
    assert ledger.outstanding(contract) == []
    assert q1.label not in ledger.reports(CONTRACT)
    # Nothing is rewritten or deleted.
    for sql in (
        "DELETE FROM expenditure_statements",
        "UPDATE expenditure_exceptions SET reasons = 'x'",
    ):
        with pytest.raises(IntegrityError, match="append-only"), services.db.session() as session:
            session.execute(text(sql))


def test_a_restatement_needs_a_correction_and_keeps_the_old_version(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger = ledger_with_q2(services, seed_contracts)
    q2, q3 = contract.parse_period(Q2), contract.parse_period(Q3)
    ledger.record(contract, q3, Decimal("130000"), Decimal("90000"), "U-TRUST", NOW)
    assert ledger.outstanding(contract)
    with pytest.raises(AlreadyStated, match='add correction:"why it changed"'):
        ledger.record(contract, q2, Decimal("1"), Decimal("1"), "U-TRUST", NOW)
    # Correcting Q2's projection to £120,000 brings Q3 within 15%: nothing is owed any more.
    fixed = ledger.record(
        contract,
        q2,
        Decimal("98000"),
        Decimal("120000"),
        "U-TRUST",
        NOW,
        correction="Projection mistyped",
    )
    assert (
        fixed.statement.supersedes_id is not None
        and fixed.statement.correction == "Projection mistyped"
    )
    assert ledger.outstanding(contract) == [] and len(ledger.statements(CONTRACT)) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2019/20 Q5", "'2019/20 Q5' is not a period I can read"),
        (
            "2019-07",
            "Expenditure statements are quarterly: give a quarter such as '2019/20 Q3', not '2019-07'.",
        ),
        (
            "2025/26 Q1",
            "2025/26 Q1 is outside the contract, which runs from 1 Apr 2018 to 31 Mar 2020.",
        ),
        (
            "2019/20 Q4",
            "2019/20 Q4 has not ended yet (it ends 31 Mar 2020); state its actual expenditure after it ends.",
        ),
    ],
)
def test_a_bad_quarter_is_refused_in_one_sentence(
    seed_contracts: dict[str, Contract], text: str, message: str
) -> None:
    with pytest.raises(BadPeriod) as refused:
        check_quarter(seed_contracts[CONTRACT], text, NOW.date())
    assert str(refused.value).startswith(message) and str(refused.value).endswith(".")


# ------------------------------------------------------------------------ reminders


def by_day(services: Services, start: datetime, end: datetime) -> list[Message]:
    out = []
    day = start
    while day < end:
        out.extend(finance_messages(services, day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return out


def test_the_provider_is_reminded_until_the_report_is_in(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger = ledger_with_q2(services, seed_contracts)
    start, end = london(2020, 2, 20, 12), london(2020, 4, 1)
    ledger.record(
        contract, contract.parse_period(Q3), Decimal("115000"), Decimal("1"), "U-TRUST", NOW
    )
    assert by_day(services, start, end) == []  # exactly 15%: nothing owed, nothing sent
    ledger.record(
        contract,
        contract.parse_period(Q3),
        Decimal("115010"),
        Decimal("1"),
        "U-TRUST",
        NOW,
        correction="Late invoice",
    )
    messages = by_day(services, start, end)
    assert [(m.when, m.kind, m.audience, m.step) for m in messages] == [
        (london(2020, 2, 23, 9), "reminder", "provider", "exception-d+3"),
        (london(2020, 2, 27, 9), "reminder", "provider", "exception-d+7"),
        (london(2020, 3, 5, 9), "reminder", "provider", "exception-d+14"),
        (london(2020, 3, 12, 9), "escalation", "commissioner", "exception-escalation"),
    ]
    assert all(m.period == f"expenditure-{Q3}" and m.contract == CONTRACT for m in messages)
    assert "15.01% over" in messages[0].text and "reasons:" in messages[0].text
    assert [m.key for m in by_day(services, start, end)] == [m.key for m in messages]
    # Filed on 1 March: the reminders before it went, none after.
    ledger.file_exception(
        contract,
        contract.parse_period(Q3),
        "Agency cover",
        "Recruited",
        Decimal("460000"),
        "U-TRUST",
        london(2020, 3, 1, 12),
    )
    assert [m.step for m in by_day(services, start, end)] == ["exception-d+3", "exception-d+7"]
    assert finance_summary(services, contract) == []


# ------------------------------------------------------------------------ chat


def test_a_statement_and_its_exception_report_through_chat(
    bot: Bot, services: Services, seed_contracts: dict[str, Contract]
) -> None:
    first = ask(bot, f"expenditure {CONTRACT} {Q2} actual:£98,000 projected:£100,000")
    assert first.kind == "done" and "no projection to compare with" in first.text, first.plain()
    within = ask(bot, f"expenditure {CONTRACT} {Q3} actual:£115,000 projected:£90,000")
    assert "15.00% over" in within.text and "no exception report is needed" in within.text
    assert within.form is None
    owed = ask(
        bot,
        f'expenditure {CONTRACT} {Q3} actual:£115,010 projected:£90,000 correction:"Late invoice"',
    )
    assert owed.title == f"Exception report needed · {CONTRACT} {Q3}", owed.plain()
    assert "15.01% over" in owed.text and owed.form is not None
    assert owed.form.verb == f"expenditure {CONTRACT} {Q3}"
    assert finance_summary(services, seed_contracts[CONTRACT]) == [
        f"💷 Expenditure exception report owed for {Q3}: actual £115,010 against £100,000 projected: "
        "15.01% over (asked Thu 20 Feb 2020)."
    ]
    # The form's fields arrive unquoted, each carrying its tag.
    filed = ask(
        bot,
        f"expenditure {CONTRACT} {Q3} reasons: Agency cover for four vacancies "
        "measures: Two posts recruited budget: £460,000",
    )
    assert filed.title == f"Exception report filed · {CONTRACT} {Q3}", filed.plain()
    assert "“Agency cover for four vacancies”" in filed.text and "£460,000" in filed.text
    listing = ask(bot, f"expenditure {CONTRACT}", user="U-BOARD")
    assert [[c.text for c in row] for row in listing.rows] == [
        [Q2, "£98,000", "£100,000", "—", "no comparison yet"],
        [Q3, "£115,010", "£90,000", "+15.01%", "filed 20 Feb 2020"],
    ]


def test_a_statement_with_its_report_in_one_line(
    bot: Bot, services: Services, seed_contracts: dict[str, Contract]
) -> None:
    ask(bot, f"expenditure {CONTRACT} {Q2} actual:£98,000 projected:£100,000")
    both = ask(
        bot,
        f"expenditure {CONTRACT} {Q3} actual:£60,000 projected:£90,000 Recruitment freeze "
        'measures:"Posts re-advertised" budget:£400k',
    )
    assert both.title == f"Exception report filed · {CONTRACT} {Q3}", both.plain()
    assert "40.00% under" in both.text and "“Recruitment freeze”" in both.text


@pytest.mark.parametrize(
    ("user", "line", "words"),
    [
        (
            "U-TRUST",
            f"expenditure {CONTRACT} 2019/20 Q5 actual:£1 projected:£1",
            "'2019/20 Q5' is not a period",
        ),
        (
            "U-TRUST",
            f"expenditure {CONTRACT} 2025/26 Q1 actual:£1 projected:£1",
            "is outside the contract",
        ),
        (
            "U-TRUST",
            f"expenditure {CONTRACT} 2019-07 actual:£1 projected:£1",
            "Expenditure statements are quarterly",
        ),
        (
            "U-TRUST",
            f"expenditure {CONTRACT} 2019/20 Q4 actual:£1 projected:£1",
            "has not ended yet",
        ),
        ("U-TRUST", f"expenditure {CONTRACT} actual:£1 projected:£1", "Name the quarter first"),
        (
            "U-TRUST",
            f"expenditure {CONTRACT} {Q3} actual:£1x projected:£1",
            "'£1x' is not an amount",
        ),
        ("U-TRUST", f"expenditure {CONTRACT} {Q3} actual:£1", "Give both actual:£…"),
        ("U-TRUST", f"expenditure {CONTRACT} {Q3}", "Give the statement"),
        (
            "U-TRUST",
            f'expenditure {CONTRACT} {Q3} reasons:"x" measures:"y" budget:£1',
            "no expenditure statement",
        ),
        (
            "U-TRUST",
            "expenditure no-such-contract 2019/20 Q3 actual:£1 projected:£1",
            "There is no contract",
        ),
        (
            "U-LIFESTYLE",
            f"expenditure {CONTRACT} {Q3} actual:£1 projected:£1",
            "is not open to you",
        ),
        ("U-BOARD", f"expenditure {CONTRACT} {Q3} actual:£1 projected:£1", "is not open to you"),
    ],
)
def test_bad_input_gets_one_helpful_sentence(
    bot: Bot, services: Services, user: str, line: str, words: str
) -> None:
    assert words in one_sentence(ask(bot, line, user=user))
    assert ExpenditureLedger(services).statements(CONTRACT) == []


@pytest.mark.parametrize(
    ("text", "style", "amount"),
    [
        ("£1.234.567,50", "european", Decimal("1234567.50")),
        ("1,5m", "european", Decimal("1500000")),
        ("£120.000", "european", Decimal("120000")),
        ("£120 000", "european", Decimal("120000")),
        ("£120,000", "uk", Decimal("120000")),
    ],
)
def test_amounts_follow_the_contracts_number_style(text: str, style: str, amount: Decimal) -> None:
    assert read_money(text, NumberStyle.named(style)) == amount


def test_an_ambiguous_amount_is_refused_showing_both_readings() -> None:
    assert parse_args(["actual:£12,34", "projected:£1"]) == (
        "'£12,34' could mean £12.34 or £1234; write £12.34 with a decimal point "
        "(or £1234 without a comma)."
    )


@pytest.mark.parametrize(
    ("reasons", "measures", "words"),
    [
        ("r" * 2001, "Two posts", "The explanation of the variance is limited"),
        ("Agency cover", "m" * 2001, "The account of corrective measures is limited"),
        ("Agency\x00 cover", "Two posts", "contains a control character (U+0000)"),
    ],
)
def test_exception_report_text_is_limited(
    services: Services, seed_contracts: dict[str, Contract], reasons, measures, words
) -> None:
    contract = seed_contracts[CONTRACT]
    ledger = ledger_with_q2(services, seed_contracts)
    q3 = contract.parse_period(Q3)
    ledger.record(contract, q3, Decimal("130000"), Decimal("90000"), "U-TRUST", NOW)
    with pytest.raises(ReportRefused) as refused:
        ledger.file_exception(contract, q3, reasons, measures, Decimal(1), "U-TRUST", NOW)
    assert words in str(refused.value)
    assert ledger.reports(CONTRACT) == {}
