"""Data-submission KPIs from the submission records (seed 001, 2.5), the service RAG (seed 003),
`/kpi compliance`, and the `kpibot payments` / `kpibot compliance` command lines."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kpibot.app.wiring import build_services
from kpibot.cli import payments as payments_cli
from kpibot.cli.base import UserError
from kpibot.core.protocol import Request
from kpibot.engine.calendar import calendar_for
from kpibot.engine.compliance import ReturnDue, ReturnReceipt, assess_submissions
from kpibot.engine.model import DataSubmissionTerms
from kpibot.store.rows import NewFigure

LONDON = ZoneInfo("Europe/London")
CONTRACTS = Path(__file__).resolve().parents[2] / "config" / "contracts"


def ask(bot, text, user="U-COMMISSIONER"):
    return bot.handle(Request.from_text(text, user=user, platform="console"))


def at(*args):
    return datetime(*args, tzinfo=LONDON)


# ------------------------------------------------------------------ pure rules


def _dues(n):
    return [
        ReturnDue(
            f"Q{i}", "quarterly", "quarterly return", datetime(2019, i, 15, 23, 59, tzinfo=UTC)
        )
        for i in range(1, n + 1)
    ]


def test_timeliness_accuracy_and_three_missed_in_a_row():
    """Six quarterly returns: Q1 on time, Q2 late, Q3 not received, Q4 late, Q5 on time, Q6 not due.
    Timeliness: 2 of the 5 due on time = 40%. Q2, Q3, Q4 in a row missed or late = service failure.
    Accuracy: of the 4 received, Q1 had an amendment, so 3 of 4 returns = 75% (by figure: 9 of 10)."""
    got = {
        "Q1": ReturnReceipt("Q1", datetime(2019, 1, 10, tzinfo=UTC), 4, 1),
        "Q2": ReturnReceipt("Q2", datetime(2019, 2, 16, tzinfo=UTC), 2, 0),
        "Q4": ReturnReceipt("Q4", datetime(2019, 4, 20, tzinfo=UTC), 2, 0),
        "Q5": ReturnReceipt("Q5", datetime(2019, 5, 15, 23, 59, tzinfo=UTC), 2, 0),
    }
    terms = DataSubmissionTerms(clause="2.5")
    a = assess_submissions(terms, _dues(6), got, datetime(2019, 5, 20, tzinfo=UTC))
    assert [r.status for r in a.records] == [
        "on_time",
        "late",
        "missing",
        "late",
        "on_time",
        "not_due",
    ]
    assert (a.timeliness.numerator, a.timeliness.denominator, a.timeliness.percent) == (2, 5, 40.0)
    assert a.timeliness.met is False
    assert (a.accuracy.numerator, a.accuracy.denominator, a.accuracy.percent) == (3, 4, 75.0)
    assert a.service_failure and a.current_streak == 0
    assert (
        a.failure_text()
        == "Service failure (2.5): 3 consecutive quarterly returns missed or late: Q2, Q3, Q4"
    )
    by_figure = assess_submissions(
        DataSubmissionTerms(clause="2.5", accuracy_unit="figure"),
        _dues(6),
        got,
        datetime(2019, 5, 20, tzinfo=UTC),
    )
    assert by_figure.accuracy.percent == 90.0


def test_two_missed_is_not_yet_a_failure_and_nothing_due_measures_nothing():
    a = assess_submissions(
        None,
        _dues(3),
        {"Q1": ReturnReceipt("Q1", datetime(2019, 1, 1, tzinfo=UTC), 1, 0)},
        datetime(2019, 3, 20, tzinfo=UTC),
    )
    assert (
        not a.service_failure
        and a.current_streak == 2
        and a.timeliness.percent == pytest.approx(100 / 3)
    )
    none = assess_submissions(None, _dues(2), {}, datetime(2018, 12, 1, tzinfo=UTC))
    assert none.timeliness.percent is None and none.timeliness.met is None
    assert none.accuracy.reason.startswith("no return has been received")


# ------------------------------------------------------------------ from the store


def _send(services, clock, when, rows, reason=None):
    """Submit ``rows`` (kpi, period, value) with the clock at ``when``, flagging late ones as the
    submit command does."""
    contract = services.contract("one-you-lifestyle")
    clock.when = when
    late = services.is_late(contract)
    figures = [
        NewFigure(
            k, contract.parse_period(p), value=v, late=late(contract.parse_period(p)), reason=reason
        )
        for k, p, v in rows
    ]
    return services.figures.submit("one-you-lifestyle", figures, actor="U-LIFESTYLE", source="chat")


@pytest.fixture
def lifestyle_returns(services, clock):
    """Seed 001 returns are due on the 15th after each Nov-Jan quarter, by 23:59.

    2018/19 Q1 (due 15 Feb 2019) sent 15 Feb at 22:00: on time; one figure amended on 1 Mar.
    The 2018/19 annual return (due 30 Apr 2019): never sent.
    2018/19 Q2 (due 15 May 2019) sent 16 May at 00:30: late.
    2018/19 Q3 (due 15 Aug 2019): never sent.
    2018/19 Q4 (due 15 Nov 2019) sent 2 Dec: late.
    2019/20 Q1 (due 15 Feb 2020) sent 10 Feb 2020: on time.
    """
    now = clock.when
    _send(
        services,
        clock,
        at(2019, 2, 15, 22, 0),
        [("PA-1", "2018/19 Q1", 400.0), ("WM-1", "2018/19 Q1", 150.0)],
    )
    _send(
        services,
        clock,
        at(2019, 3, 1, 9, 0),
        [("PA-1", "2018/19 Q1", 410.0)],
        reason="GP referrals recounted",
    )
    _send(services, clock, at(2019, 5, 16, 0, 30), [("PA-1", "2018/19 Q2", 420.0)])
    _send(services, clock, at(2019, 12, 2, 11, 0), [("PA-1", "2018/19 Q4", 430.0)])
    _send(services, clock, at(2020, 2, 10, 11, 0), [("PA-1", "2019/20 Q1", 440.0)])
    clock.when = now
    return services


def test_data_submission_kpis_come_from_the_submission_records(lifestyle_returns, clock):
    """Due by 20 Feb 2020: 2018/19 Q1, the 2018/19 annual return, Q2, Q3, Q4 and 2019/20 Q1.
    On time: Q1 and 2019/20 Q1, so timeliness = 2 of 6 = 33.3%, below 95%.
    Received: Q1, Q2, Q4, 2019/20 Q1; Q1 was later amended, so accuracy = 3 of 4 = 75%, below 95%.
    Q2 late, Q3 not received, Q4 late: three consecutive periods missed = service failure (2.5)."""
    from kpibot.features.compliance import submissions

    services = lifestyle_returns
    contract = services.contract("one-you-lifestyle")
    a = submissions(services, contract)
    status = {r.label: r.status for r in a.records if r.status != "not_due"}
    assert status == {
        "2018/19 Q1": "on_time",
        "2018/19": "missing",
        "2018/19 Q2": "late",
        "2018/19 Q3": "missing",
        "2018/19 Q4": "late",
        "2019/20 Q1": "on_time",
    }
    assert round(a.timeliness.percent, 1) == 33.3 and a.accuracy.percent == 75.0
    assert a.failure_text() == (
        "Service failure (2.5): 3 consecutive quarterly returns missed or late: "
        "2018/19 Q2, 2018/19 Q3, 2018/19 Q4"
    )
    q1 = next(r for r in a.records if r.label == "2018/19 Q1")
    assert (q1.figures, q1.amended) == (2, 1)
    assert q1.received_at == at(2019, 2, 15, 22, 0).astimezone(
        UTC
    )  # the amendment does not make it late
    cal = calendar_for(contract)
    for row in services.figures.current("one-you-lifestyle"):
        period = contract.parse_period(row.period)
        first = services.figures.history("one-you-lifestyle", row.kpi, period)[0]
        assert (
            first.late
            == (first.submitted_at > cal.due_at(period))
            == (status[row.period] == "late")
        )


def test_compliance_command_reports_kpis_failure_and_returns(bot, lifestyle_returns):
    r = ask(bot, "compliance one-you-lifestyle", user="U-LIFESTYLE")
    assert r.ok and r.title == "Compliance · One You Lifestyle Programmes"
    assert (
        "Timeliness (2.5): 33.3% against a 95% target: not met. 2 of 6 returns due so far arrived"
        in r.text
    )
    assert (
        "Accuracy (2.5): 75% against a 95% target: not met. 3 of 4 returns received had no figure amended "
        "afterwards (amended: 2018/19 Q1)." in r.text
    )
    assert "🚨 Service failure (2.5): 3 consecutive quarterly returns missed or late" in r.text
    assert "The contract sets no service-level rating." in r.text
    rows = {row[0].text: (row[3].text, row[4].text) for row in r.rows}
    assert rows["2018/19 Q1"] == ("on time", "1 of 2") and rows["2018/19 Q3"] == (
        "not received",
        "—",
    )
    assert rows["2019/20 (annual monitoring return)"][0] == "not due yet"


def test_status_shows_the_service_failure(bot, lifestyle_returns):
    from kpibot.app.wiring import install_features

    install_features(lifestyle_returns)
    text = ask(bot, "status one-you-lifestyle").text
    assert "🚨 Service failure (2.5): 3 consecutive quarterly returns" in text
    assert "💷 20% of ACV (of a 20% incentive) at risk" in text


def test_service_rag_in_compliance_with_cumulative_beside_it(bot, services):
    """One Psychology Year 2: HLO-4 Good in 2019/20 Q2 (1 of 1, green), Requires improvement in Q3
    (0 of 1, red); cumulative 1 of 2 = 50%, red."""
    contract = services.contract("one-psychology")
    services.figures.submit(
        "one-psychology",
        [
            NewFigure("HLO-4", contract.parse_period("2019/20 Q2"), value=3.0),
            NewFigure("HLO-4", contract.parse_period("2019/20 Q3"), value=2.0),
        ],
        actor="U-PSYCH",
        source="chat",
    )
    r = ask(bot, "compliance one-psychology")
    assert "Schedule 2, 2019/20 Q3: 🔴 red, 0% of outcomes achieved (0 of 1)" in r.text
    assert "Cumulative Year 2: 🔴 red, 50% (1 of 2)" in r.text
    assert "Not achieved in 2019/20 Q3: HLO-4" in r.text
    assert "For information: the contract sets no data-submission KPIs." in r.text
    assert "Timeliness: " in r.text and "95% target" not in r.text
    assert "Service failure" not in r.text


def test_compliance_sections_plug_in_and_a_contract_without_a_calendar_says_so(bot):

    def plans(services, contract):
        return (
            ["📋 1 open action plan: #3 C7 — plan agreed"]
            if contract.id == "childrens-trust"
            else []
        )

    bot.services.hooks.compliance.append(plans)
    try:
        r = ask(bot, "compliance childrens-trust")
    finally:
        bot.services.hooks.compliance.remove(plans)
    assert "No return calendar in the contract file, so timeliness cannot be measured." in r.text
    assert "*Also*\n📋 1 open action plan: #3 C7 — plan agreed" in r.text and r.rows == []
    bad = ask(bot, "compliance childrens-trust now")
    assert bad.kind == "error" and "takes only a contract" in bad.text


# ------------------------------------------------------------------ the command line


@pytest.fixture
def cli(tmp_path, monkeypatch, clock):
    """`kpibot` with the money commands registered, on a fresh SQLite database pinned to 20 Feb 2020."""
    from kpibot.core.settings import Settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    monkeypatch.setenv("COLUMNS", "220")
    services = build_services(Settings(database_url=url), clock)
    services.db.upgrade()
    services.load_contracts([CONTRACTS], actor="test")

    def run(*argv):
        parser = argparse.ArgumentParser(prog="kpibot")
        sub = parser.add_subparsers(dest="command")

        def add(name, handler, help_text, parent=sub):
            p = parent.add_parser(name, help=help_text, description=help_text)
            p.set_defaults(handler=handler)
            return p

        payments_cli.register(sub, add, lambda p: p.add_argument("--database"))
        args = parser.parse_args([*argv, "--database", url] if argv[-1] != "--help" else list(argv))
        try:
            return args.handler(args)
        except UserError as refused:  # as kpibot.cli.main does: one sentence, exit code 2
            print(refused, file=sys.stderr)
            return 2

    return run, services


def test_cli_payments_gives_the_seed_figures_with_reasons(cli, capsys):
    run, _ = cli
    assert run("payments", "healthy-child-0-19", "--year", "0") == 0
    out = capsys.readouterr().out
    assert "Year 0 (Oct 2016 to March 2017)" in out
    assert "Guaranteed 1% of ACV · At risk 2% of ACV" in out
    assert "4 × 0.5% × 6/12 = 1% of ACV is a guaranteed award" in out
    assert run("payments", "one-you-lifestyle") == 0
    out = capsys.readouterr().out
    assert (
        "Guaranteed 80% of ACV · At risk 20% of ACV" in out
        and "Physical Activity: 20% Target (2,200)" in out
    )
    assert "5 programmes' tiers add up to 20%" in out


def test_cli_compliance_and_errors(cli, capsys):
    run, _ = cli
    assert run("compliance", "one-you-lifestyle") == 0
    out = capsys.readouterr().out
    assert (
        "Timeliness (2.5): 0% against a 95% target: not met" in out
        and "Service failure (2.5)" in out
    )
    assert run("payments", "one-you-lifestle") == 2
    assert "Did you mean 'one-you-lifestyle'?" in capsys.readouterr().err
    assert run("payments", "one-you-lifestyle", "--year", "7") == 2
    assert "has no contract year '7'" in capsys.readouterr().err
    assert run("payments", "childrens-trust") == 2
    with pytest.raises(SystemExit) as done:
        run("payments", "--help")
    assert done.value.code == 0 and "--year" in capsys.readouterr().out
