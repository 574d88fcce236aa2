"""Who hears a contract's messages: an audience turned into (platform, channel) targets.

``provider`` and ``commissioner`` are that party's Slack channel and Teams conversation;
``channel`` and ``attendees`` add every channel bound to the contract. With nothing configured a
message still goes to ``("console", contract_id)``, so it is recorded and the console prints it.

>>> # audience_targets(contract, "provider", policy) -> [("slack", "C-PROVIDER")]
"""

from __future__ import annotations

from collections.abc import Sequence

from kpibot.core.access import AccessPolicy
from kpibot.engine.model import Contract, Party

Target = tuple[str, str]


def channel_platform(channel: str) -> str:
    """The platform a bound channel id belongs to: Teams ids carry a colon (``19:…@thread``)."""
    return "teams" if ":" in channel else "slack"


def _party_targets(party: Party) -> list[Target]:
    out: list[Target] = []
    if party.slack_channel:
        out.append(("slack", party.slack_channel))
    if party.teams_conversation:
        out.append(("teams", party.teams_conversation))
    return out


def audience_targets(
    contract: Contract, audience: str, policy: AccessPolicy | None
) -> list[Target]:
    """Where a message for ``audience`` goes, as (platform, channel) pairs.

    provider and commissioner: that party's Slack channel and Teams conversation; channel and
    attendees: every channel bound to the contract in the access policy plus both parties'.
    With nothing configured the message still goes to ``("console", contract.id)``, so it is
    recorded and the console deliverer prints it.

    >>> # audience_targets(contract, "provider", policy) -> [("slack", "C-PROVIDER")]
    """
    bound = [ch for ch, cid in policy.channels.items() if cid == contract.id] if policy else []
    return targets_for(contract, audience, bound)


def targets_for(contract: Contract, audience: str, bound: Sequence[str]) -> list[Target]:
    if audience == "provider":
        found = _party_targets(contract.provider)
    elif audience == "commissioner":
        found = _party_targets(contract.commissioner)
    else:
        found = [(channel_platform(ch), ch) for ch in bound]
        found += _party_targets(contract.provider) + _party_targets(contract.commissioner)
    unique = list(dict.fromkeys(found))
    return unique or [("console", contract.id)]
