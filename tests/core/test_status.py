"""The status cache refreshes only what a change touches, and stays exactly right.

After a submission only the KPIs it names are evaluated again; a figure opening a later period
moves the whole contract on; a return moving to pending, or the date moving on, leaves the KPI
rows alone. Every refreshed overview is compared with the old per-scorecard path
(``legacy_overview``) built from nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from kpibot.commands.status import cached_overview, warm
from kpibot.core import status as status_cache
from kpibot.store.rows import NewFigure
from tests.commands.test_status import legacy_overview

CONTRACT = "childrens-trust"


@pytest.fixture
def evaluations(monkeypatch):
    """Every evaluation the status cache makes: the KPIs it was limited to (None: all)."""
    calls = []
    real = status_cache.standings

    def spy(contracts, figures, today, at=None, kpis=None):
        calls.append(None if kpis is None else sorted(k for ks in kpis.values() for k in ks))
        return real(contracts, figures, today, at, kpis)

    monkeypatch.setattr(status_cache, "standings", spy)
    return calls


@pytest.fixture
def contract(services):
    warm(services, services.contract_ids())
    return services.contract(CONTRACT)


def test_an_amendment_evaluates_only_its_kpi(services, contract, evaluations):
    q3 = contract.parse_period("2019/20 Q3")
    services.figures.submit(
        CONTRACT,
        [NewFigure("C1", q3, value=86.0, reason="recount")],
        actor="U-TRUST",
        source="chat",
    )
    reply = cached_overview(services, contract, None)
    assert evaluations == [["C1"]]
    assert reply == legacy_overview(services, contract, None)
    assert "9 amber" in reply.text


def test_a_figure_for_a_later_period_moves_the_contract_on(services, contract, evaluations):
    q4 = contract.parse_period("2019/20 Q4")
    services.figures.submit(CONTRACT, [NewFigure("C1", q4, value=97.0)], actor="U", source="chat")
    reply = cached_overview(services, contract, None)
    assert "2019/20 Q4" in reply.title
    assert evaluations == [None]  # every KPI is now shown at Q4
    assert reply == legacy_overview(services, contract, None)


def test_an_earlier_period_refreshes_the_trend_of_its_kpi_only(services, contract, evaluations):
    q1 = contract.parse_period("2019/20 Q1")
    services.figures.submit(
        CONTRACT,
        [NewFigure("C7", q1, value=99.0, reason="recount")],
        actor="U",
        source="chat",
    )
    reply = cached_overview(services, contract, None)
    assert evaluations == [["C7"]]
    assert reply == legacy_overview(services, contract, None)


def test_a_pending_return_leaves_the_kpi_rows_alone(services, contract, evaluations):
    from kpibot.features import returns

    period = contract.parse_period("2019/20 Q3")
    lacking = returns.load(services, contract, period).missing.figures
    services.figures.submit(
        CONTRACT, [NewFigure(k, period, value=100.0) for k in lacking], actor="U", source="chat"
    )
    cached_overview(services, contract, None)
    evaluations.clear()
    returns.submit_return(services, contract, period, "U-TRUST", "provider")
    reply = cached_overview(services, contract, None)
    assert "*pending* approval" in reply.text
    assert evaluations == []
    assert reply == legacy_overview(services, contract, None)
    returns.approve(services, contract, period, "U-COMMISSIONER", "commissioner")
    reply = cached_overview(services, contract, None)
    assert "pending" not in reply.text and evaluations == []
    assert reply == legacy_overview(services, contract, None)


def test_a_new_day_keeps_the_kpi_rows_and_rebuilds_the_rest(services, contract, clock, evaluations):
    for days in (1, 30, 90):
        clock.when += timedelta(days=days)
        reply = cached_overview(services, contract, None)
        assert reply == legacy_overview(services, contract, None)
    assert evaluations == []


def test_a_refused_request_changes_nothing_it_rebuilds(services, contract, evaluations):
    services.audit.record("U-NOBODY", "refuse", CONTRACT, "submit C1", outcome="refused")
    reply = cached_overview(services, contract, None)
    assert evaluations == []
    assert reply == legacy_overview(services, contract, None)


def test_a_reloaded_contract_starts_again(services, contract, evaluations):
    services.store_contracts([contract], actor="test", with_history=False)
    reloaded = services.contract(CONTRACT)
    reply = cached_overview(services, reloaded, None)
    assert evaluations == [None]
    assert reply == legacy_overview(services, reloaded, None)


def test_an_amendment_is_exact_once_the_contract_has_left_every_cache(services, contract):
    # As with ten thousand contracts: the contract is read from the store again and its
    # compiled terms are gone, yet the refreshed overview is the one built from nothing.
    from kpibot.engine import scorecard, targets

    scorecard.clear_caches()
    targets.clear_terms_cache()
    services.reload()
    again = services.contract(CONTRACT)
    q3 = again.parse_period("2019/20 Q3")
    services.figures.submit(
        CONTRACT, [NewFigure("C1", q3, value=86.0, reason="recount")], actor="U", source="chat"
    )
    reply = cached_overview(services, again, None)
    assert "9 amber" in reply.text
    assert reply == legacy_overview(services, again, None)
