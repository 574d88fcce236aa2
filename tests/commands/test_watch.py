"""The subscription verbs' parsing and answers, as a user types them."""

from __future__ import annotations

from kpibot.commands.registry import default_registry
from kpibot.commands.watch import parse_watch
from kpibot.engine.model import Contract


def test_watch_reads_an_optional_kpi_and_an_optional_filter(
    seed_contracts: dict[str, Contract],
) -> None:
    trust = seed_contracts["childrens-trust"]
    assert parse_watch(trust, []) == (None, None)
    kpi, what = parse_watch(trust, ["c7", "red"])  # type: ignore[misc]
    assert (kpi.code if kpi else None, what) == ("C7", "red")
    assert parse_watch(trust, ["any-change"]) == (None, "any-change")
    assert parse_watch(trust, ["MONEY"]) == (None, "money")
    unknown = parse_watch(trust, ["C77"])
    assert isinstance(unknown, str) and "'childrens-trust' has no KPI 'C77'" in unknown
    both = parse_watch(trust, ["C7", "loud"])
    assert isinstance(both, str) and "neither a KPI" in both


def test_the_subscription_verbs_are_registered_with_help() -> None:
    registry = default_registry()
    for verb in ("watch", "unwatch", "watching", "digest", "mute"):
        handler = registry.get(verb)
        assert handler is not None and handler.usage.startswith(verb) and handler.examples
