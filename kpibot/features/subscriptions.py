"""Subscriptions: watches, digests and mutes, per person or per channel, audited.

* ``/kpi watch <contract> [kpi] [red|critical|any-change|money]`` stores a watch: the alerts
  about that contract (or one KPI of it) reach the watcher (``kpibot.features.alerts`` asks
  ``watchers`` who they are). Typed in a direct message it is the person's, delivered by DM;
  typed in a channel it is the channel's.
* ``/kpi digest daily|weekly|monthly [contracts…]`` stores a digest: a DM at 09:00
  Europe/London on working days with what changed since the last one. ``digest_messages`` (a
  message provider the tick calls) plans them; ``DigestComposer`` builds each one when it is
  delivered, from the store as it is then, for the contracts its reader may see then.
* ``/kpi mute <contract> <duration>`` silences a contract's alerts for a person or channel.

Where a direct message goes: on Slack the person's user id (``chat.postMessage`` opens the DM);
on Teams the 1:1 conversation they wrote from (its reference is stored by
``kpibot.features.bind.ConversationStore``); on the console the user.

Every change is audited in the same transaction; access is checked when a message is built, not
only when the subscription is made, so a reader who loses access stops hearing at once.

>>> # place = place_of(services, "slack", "U1", "D123")          # a DM: the person's own
>>> # watch(services, "U1", None, place, "childrens-trust", "C7", "red", now)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, cast

import pandas as pd
from sqlalchemy import Table, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kpibot.core.access import AccessPolicy, Identity
from kpibot.core.protocol import Reply
from kpibot.core.services import Services
from kpibot.engine.actionplan import WORKING
from kpibot.engine.calendar import LONDON, calendar_for
from kpibot.engine.describe import format_value
from kpibot.engine.model import Contract
from kpibot.engine.reminders import Message
from kpibot.engine.scorecard import compiled, evaluate_states
from kpibot.engine.subscriptions import (
    FILTER_WORDS,
    digest_moments,
    kinds_heard,
    next_digest,
)
from kpibot.features.actionplan import ActionPlanService
from kpibot.features.bind import ConversationStore
from kpibot.features.incidents import IncidentRepository
from kpibot.store.audit import add_event
from kpibot.store.figures import current_as_of, versions_frame
from kpibot.store.outbox import OutboxMessage
from kpibot.store.schema import FigureRecord, MuteRecord, SubscriptionRecord, as_utc

# ---- user-facing texts, kept together
DIGEST_TITLE = "{frequency} digest · {since} to {until}"
DIGEST_NOTHING = "Nothing changed on {what} since {since}."
DIGEST_CONTRACTS_ALL = "your contracts"
SECTION_RED = "🔴 Turned red: {items}"
SECTION_GREEN = "🟢 Back to green: {items}"
SECTION_CRITICAL = "⚠️ Critical failures: {items}"
SECTION_LATE = "⏰ Returns now late: {items}"
SECTION_INCIDENTS = "🚨 Incidents: {items}"
SECTION_ACTIONS = "📋 Action plan actions due: {items}"
FREQUENCY_WORDS = {"daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}
# How long a contract's digest section is reused: digests of one moment share their windows.
SECTION_TTL_S = 60.0
_SECTION_CACHE = 4096
_KEY_LIMIT = 300


def _utc(moment: datetime) -> datetime:
    return as_utc(moment)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(LONDON):%a %-d %b %H:%M}"


def _insert(services: Services) -> Any:
    return postgresql.insert if services.db.dialect == "postgresql" else sqlite.insert


# ---------------------------------------------------------------------------------- places


@dataclass(frozen=True)
class Place:
    """Where a subscription's messages go; ``direct`` for a person's DMs (quiet hours apply)."""

    platform: str
    channel: str
    direct: bool

    @property
    def target(self) -> tuple[str, str]:
        return self.platform, self.channel

    @property
    def words(self) -> str:
        return "your direct messages" if self.direct else "this channel"


def is_direct(services: Services, platform: str, channel: str | None) -> bool:
    """Whether a command typed in ``channel`` came from a direct message (or a terminal)."""
    if not channel:
        return True
    if platform == "slack":
        return channel.startswith("D")
    if platform == "teams":
        if channel.startswith("a:"):
            return True
        ref = ConversationStore(services.db).get("teams", channel)
        return ref is not None and ref.conversation_type == "personal"
    return False


def personal_place(
    services: Services, platform: str, user: str, channel: str | None
) -> Place | None:
    """Where a person's direct messages go; None on Teams unless they wrote from a 1:1 chat
    (a bot can post only to a conversation it has a reference for)."""
    if platform == "teams":
        return (
            Place("teams", channel, True)
            if channel and is_direct(services, "teams", channel)
            else None
        )
    return Place(platform, user, True)


def place_of(services: Services, platform: str, user: str, channel: str | None) -> Place | None:
    """The place a command was typed: the person's DMs, or the channel it was typed in."""
    if is_direct(services, platform, channel):
        return personal_place(services, platform, user, channel)
    assert channel is not None
    return Place(platform, channel, False)


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Subscription:
    """A stored watch or digest."""

    id: int
    kind: str
    owner: str
    owner_email: str | None
    place: Place
    contract_id: str | None
    kpi: str | None
    what: str | None
    frequency: str | None
    contracts: tuple[str, ...]
    created_at: datetime
    last_digest_at: datetime | None = None

    def describe(self) -> str:
        """'childrens-trust C7: turning red and red periods running, in your direct messages'."""
        if self.kind == "digest":
            which = ", ".join(self.contracts) or "all your contracts"
            return f"{FREQUENCY_WORDS.get(self.frequency or '', '')} digest of {which}, by DM"
        subject = f"{self.contract_id} {self.kpi}" if self.kpi else f"{self.contract_id}"
        return f"{subject}: {FILTER_WORDS.get(self.what or '', self.what)}, in {self.place.words}"

    def hears(self, kind: str, kpi: str | None) -> bool:
        """Whether this watch hears a ``kind`` message about ``kpi`` (None: the contract)."""
        if self.kind != "watch" or kind not in kinds_heard(self.what or ""):
            return False
        return self.kpi is None or kpi is None or self.kpi == kpi


def _subscription(r: SubscriptionRecord) -> Subscription:
    return Subscription(
        r.id,
        r.kind,
        r.owner,
        r.owner_email,
        Place(r.platform, r.channel, r.direct),
        r.contract_id,
        r.kpi_code,
        r.what,
        r.frequency,
        tuple(r.contracts or ()),
        r.created_at,
        r.last_digest_at,
    )


def _key(*parts: str) -> str:
    key = "|".join(parts)
    if len(key) <= _KEY_LIMIT:
        return key
    return f"{key[: _KEY_LIMIT - 41]}#{hashlib.sha1(key.encode()).hexdigest()}"


def _audit(
    session: Session,
    now: datetime,
    actor: str,
    action: str,
    contract_id: str | None,
    place: Place,
    detail: dict[str, Any],
) -> None:
    add_event(
        session,
        at=now,
        actor=actor,
        action=action,
        contract_id=contract_id,
        subject=f"{place.platform}:{place.channel}"[:300],
        outcome="ok",
        detail={"direct": place.direct, **detail},
    )


# ---------------------------------------------------------------------------------- watches


def watch(
    services: Services,
    owner: str,
    email: str | None,
    place: Place,
    contract_id: str,
    kpi: str | None,
    what: str,
    now: datetime,
) -> tuple[Subscription, bool]:
    """Store a watch (audited); returns it and whether it is new (False: it already existed)."""
    key = _key("watch", f"{place.platform}:{place.channel}", contract_id, kpi or "*", what)
    with services.db.session() as session:
        existing = session.scalar(select(SubscriptionRecord).where(SubscriptionRecord.key == key))
        if existing is not None:
            return _subscription(existing), False
        record = SubscriptionRecord(
            key=key,
            kind="watch",
            owner=owner,
            owner_email=email,
            platform=place.platform,
            channel=place.channel,
            direct=place.direct,
            contract_id=contract_id,
            kpi_code=kpi,
            what=what,
            frequency=None,
            contracts=[],
            created_at=now,
        )
        session.add(record)
        session.flush()
        _audit(session, now, owner, "watch", contract_id, place, {"kpi": kpi, "what": what})
        return _subscription(record), True


def unwatch(
    services: Services,
    owner: str,
    place: Place,
    contract_id: str,
    kpi: str | None,
    what: str | None,
    now: datetime,
) -> list[Subscription]:
    """Remove the place's watches on a contract (only those on ``kpi`` / for ``what`` if given)."""
    query = select(SubscriptionRecord).where(
        SubscriptionRecord.kind == "watch",
        SubscriptionRecord.platform == place.platform,
        SubscriptionRecord.channel == place.channel,
        SubscriptionRecord.contract_id == contract_id,
    )
    if kpi is not None:
        query = query.where(SubscriptionRecord.kpi_code == kpi)
    if what is not None:
        query = query.where(SubscriptionRecord.what == what)
    with services.db.session() as session:
        records = session.scalars(query).all()
        gone = [_subscription(r) for r in records]
        if gone:
            session.execute(
                delete(SubscriptionRecord).where(SubscriptionRecord.id.in_([s.id for s in gone]))
            )
            _audit(
                session,
                now,
                owner,
                "unwatch",
                contract_id,
                place,
                {"removed": [s.describe() for s in gone]},
            )
    return gone


def subscriptions_for(services: Services, places: Iterable[Place]) -> list[Subscription]:
    """Every watch and digest of these places, digests last."""
    targets = {p.target for p in places}
    if not targets:
        return []
    query = select(SubscriptionRecord).where(
        SubscriptionRecord.channel.in_(sorted({c for _, c in targets}))
    )
    with services.db.session(read_only=True) as session:
        found = [
            _subscription(r)
            for r in session.scalars(query.order_by(SubscriptionRecord.id))
            if (r.platform, r.channel) in targets
        ]
    return sorted(found, key=lambda s: (s.kind == "digest", s.contract_id or "", s.kpi or ""))


def subscriptions_by_id(services: Services, ids: Iterable[int]) -> list[Subscription]:
    """The subscriptions with these ids that still exist."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = select(SubscriptionRecord).where(SubscriptionRecord.id.in_(wanted))
    with services.db.session(read_only=True) as session:
        return [_subscription(r) for r in session.scalars(query)]


def watchers(services: Services, contract_ids: Iterable[str]) -> dict[str, list[Subscription]]:
    """Every watch on these contracts, by contract (one query)."""
    ids = sorted(set(contract_ids))
    out: dict[str, list[Subscription]] = {}
    if not ids:
        return out
    table = cast(Table, SubscriptionRecord.__table__)
    query = select(table).where(table.c.kind == "watch", table.c.contract_id.in_(ids))
    # Plain rows, not ORM objects: an import on a busy contract reads thousands of watches.
    with services.db.session(read_only=True) as session:
        for r in session.execute(query.order_by(table.c.id)):
            sub = Subscription(
                r.id,
                r.kind,
                r.owner,
                r.owner_email,
                Place(r.platform, r.channel, r.direct),
                r.contract_id,
                r.kpi_code,
                r.what,
                r.frequency,
                tuple(r.contracts or ()),
                r.created_at,
                r.last_digest_at,
            )
            out.setdefault(str(r.contract_id), []).append(sub)
    return out


# ---------------------------------------------------------------------------------- mutes


def mute(
    services: Services, owner: str, place: Place, contract_id: str, until: datetime, now: datetime
) -> None:
    """Silence a contract's alerts for ``place`` until ``until`` (replacing any earlier mute)."""
    values = {
        "platform": place.platform,
        "channel": place.channel,
        "contract_id": contract_id,
        "until": _utc(until),
        "muted_by": owner,
        "muted_at": _utc(now),
    }
    statement = _insert(services)(MuteRecord).values(**values)
    with services.db.session() as session:
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["platform", "channel", "contract_id"],
                set_={k: statement.excluded[k] for k in ("until", "muted_by", "muted_at")},
            )
        )
        _audit(session, now, owner, "mute", contract_id, place, {"until": _utc(until).isoformat()})


def unmute(services: Services, owner: str, place: Place, contract_id: str, now: datetime) -> bool:
    """Lift a mute; False when there was none."""
    with services.db.session() as session:
        gone = session.execute(
            delete(MuteRecord).where(
                MuteRecord.platform == place.platform,
                MuteRecord.channel == place.channel,
                MuteRecord.contract_id == contract_id,
            )
        ).rowcount  # type: ignore[attr-defined]
        if gone:
            _audit(session, now, owner, "unmute", contract_id, place, {})
    return bool(gone)


def muted(
    services: Services, contract_ids: Iterable[str], now: datetime
) -> dict[str, dict[tuple[str, str], datetime]]:
    """Mutes in force at ``now`` on these contracts: {contract: {(platform, channel): until}}."""
    ids = sorted(set(contract_ids))
    out: dict[str, dict[tuple[str, str], datetime]] = {}
    if not ids:
        return out
    query = select(MuteRecord).where(MuteRecord.contract_id.in_(ids), MuteRecord.until > _utc(now))
    with services.db.session(read_only=True) as session:
        for r in session.scalars(query):
            out.setdefault(r.contract_id, {})[(r.platform, r.channel)] = r.until
    return out


def mutes_for(
    services: Services, places: Iterable[Place], now: datetime
) -> list[tuple[str, datetime]]:
    """(contract, until) for every mute in force for these places."""
    targets = {p.target for p in places}
    query = select(MuteRecord).where(MuteRecord.until > _utc(now)).order_by(MuteRecord.contract_id)
    with services.db.session(read_only=True) as session:
        return [
            (r.contract_id, r.until)
            for r in session.scalars(query)
            if (r.platform, r.channel) in targets
        ]


# ---------------------------------------------------------------------------------- digests


def set_digest(
    services: Services,
    owner: str,
    email: str | None,
    place: Place,
    frequency: str,
    contracts: Sequence[str],
    now: datetime,
) -> Subscription:
    """Start a digest for ``place`` (a person's DMs), or change its frequency and contracts.

    The first digest covers what changed since now; a changed digest keeps its last moment.
    """
    key = _key("digest", f"{place.platform}:{place.channel}")
    with services.db.session() as session:
        record = session.scalar(select(SubscriptionRecord).where(SubscriptionRecord.key == key))
        before = None if record is None else (record.frequency, list(record.contracts or []))
        if record is None:
            record = SubscriptionRecord(
                key=key,
                kind="digest",
                owner=owner,
                owner_email=email,
                platform=place.platform,
                channel=place.channel,
                direct=place.direct,
                contract_id=None,
                kpi_code=None,
                what=None,
                created_at=now,
            )
            session.add(record)
        record.frequency = frequency
        record.contracts = list(contracts)
        record.owner_email = email or record.owner_email
        session.flush()
        _audit(
            session,
            now,
            owner,
            "digest",
            None,
            place,
            {"frequency": frequency, "contracts": list(contracts), "before": before},
        )
        return _subscription(record)


def stop_digest(services: Services, owner: str, place: Place, now: datetime) -> bool:
    """Stop ``place``'s digest; False when it had none."""
    key = _key("digest", f"{place.platform}:{place.channel}")
    with services.db.session() as session:
        gone = session.execute(
            delete(SubscriptionRecord).where(SubscriptionRecord.key == key)
        ).rowcount  # type: ignore[attr-defined]
        if gone:
            _audit(session, now, owner, "digest_stop", None, place, {})
    return bool(gone)


def digest_subscriptions(services: Services) -> list[Subscription]:
    """Every digest, oldest first."""
    query = select(SubscriptionRecord).where(SubscriptionRecord.kind == "digest")
    with services.db.session(read_only=True) as session:
        return [_subscription(r) for r in session.scalars(query.order_by(SubscriptionRecord.id))]


def digest_message(sub: Subscription, when: datetime) -> Message:
    """The outbox message for one digest at ``when``; built for real when it is delivered."""
    word = FREQUENCY_WORDS.get(sub.frequency or "", "")
    which = ", ".join(sub.contracts) or DIGEST_CONTRACTS_ALL
    return Message(
        when,
        "",
        "digest",
        "subscriber",
        f"{when.astimezone(LONDON):%Y-%m-%d}",
        f"digest-{sub.id}",
        f"{word} digest of {which} for {sub.owner}",
        target=sub.place.target,
    )


def digest_messages(services: Services, start: datetime, end: datetime) -> list[Message]:
    """Digests due in ``(start, end]`` (a message provider for the tick), none before a digest
    was asked for. Keys are ``|<day>|digest|subscriber|digest-<id>``, so a second replica or a
    replayed window stores each digest once."""
    out: list[Message] = []
    for sub in digest_subscriptions(services):
        since = max(_utc(start), _utc(sub.created_at))
        for when in digest_moments(sub.frequency or "weekly", since, _utc(end)):
            out.append(digest_message(sub, when))
    return sorted(out, key=lambda m: (m.when, m.step))


def planned_digests(
    services: Services, contract_id: str, start: datetime, end: datetime
) -> list[Message]:
    """The digests from ``start`` to ``end`` that would cover ``contract_id`` (for the preview).

    A digest of all one's contracts covers it when its owner may see it today.
    """
    policy = policy_for(services, None)
    subs = {f"digest-{s.id}": s for s in digest_subscriptions(services)}
    out = []
    for m in digest_messages(services, start, end):
        sub = subs.get(m.step)
        if sub is None:
            continue
        covered = (
            contract_id in sub.contracts
            if sub.contracts
            else policy.can(identify(policy, sub), "view", contract_id)
        )
        if covered:
            out.append(m)
    return out


# ---------------------------------------------------------------------------------- access

_POLICIES: dict[Path, tuple[float, AccessPolicy]] = {}
_POLICY_LOCK = threading.Lock()


def policy_for(services: Services, policy: AccessPolicy | None) -> AccessPolicy:
    """``policy``, or the access file's (read again when the file changes)."""
    if policy is not None:
        return policy
    path = Path(services.settings.access_file)
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return AccessPolicy()
    with _POLICY_LOCK:
        hit = _POLICIES.get(path)
        if hit is None or hit[0] != stamp:
            hit = _POLICIES[path] = (stamp, AccessPolicy.load(path))
        return hit[1]


def identify(policy: AccessPolicy, sub: Subscription) -> Identity:
    """Who a subscription's owner is, per ``policy`` as it is now."""
    return policy.identify(sub.owner, sub.owner_email)


def may_see(policy: AccessPolicy, sub: Subscription, contract_id: str) -> bool:
    """Whether the subscription's owner may see ``contract_id`` now."""
    return policy.can(identify(policy, sub), "view", contract_id)


# ---------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class DigestSection:
    """What changed on one contract in a digest's window."""

    contract_id: str
    name: str
    lines: tuple[str, ...]


def _claim_window(
    session: Session, sub_id: int, due: datetime
) -> tuple[SubscriptionRecord, datetime] | None:
    """The subscription and the start of the window its digest at ``due`` covers.

    The subscription remembers its last digest's moment and the one before: a retried delivery
    of the same digest rebuilds the same window; an older digest delivered after a newer one is
    stale (None), and so is a digest whose subscription is gone. One statement either way.
    """
    table = cast(Table, SubscriptionRecord.__table__)
    last = table.c.last_digest_at
    statement = (
        update(table)
        .where(
            table.c.id == sub_id,
            table.c.kind == "digest",
            or_(last.is_(None), last <= _utc(due)),
        )
        .values(
            previous_digest_at=case((last == _utc(due), table.c.previous_digest_at), else_=last),
            last_digest_at=_utc(due),
        )
        .returning(*table.c)
    )
    row = session.execute(statement).first()
    if row is None:
        return None
    record = SubscriptionRecord(**dict(row._mapping))
    return record, record.previous_digest_at or record.created_at


def _kpi_line(kpi: str, period: str, value: float, unit: str) -> str:
    return f"{kpi} {period} {format_value(value, unit)}"


def _ratings(frame: pd.DataFrame) -> dict[tuple[str, str, int], Any]:
    """Rated rows with a value by (kpi, kind, ordinal)."""
    if frame.empty:
        return {}
    have = frame[frame["value"].notna()]
    return {(r.kpi, r.kind, int(r.ordinal)): r for r in have.itertuples()}


def contract_changes(
    services: Services, contract: Contract, since: datetime, until: datetime, next_at: datetime
) -> DigestSection:
    """What changed on one contract in ``(since, until]`` (see ``changes``)."""
    return changes(services, [contract], since, until, next_at)[contract.id]


def changes(
    services: Services,
    contracts: Sequence[Contract],
    since: datetime,
    until: datetime,
    next_at: datetime,
) -> dict[str, DigestSection]:
    """What changed on each contract in ``(since, until]``: KPIs that turned red or back to
    green, critical failures, returns that became late, incidents opened or gone overdue, and
    action plan actions due by the next digest (``next_at``). A handful of queries for all of
    them, and one engine pass.

    A figure is compared with what the reader knew at the last digest: the same figure then (an
    amendment), or else the KPI's previous period then. The figures are the store's as they
    stood at ``until``, so a digest rebuilt later says the same.
    """
    since, until = _utc(since), _utc(until)
    by_id = {c.id: c for c in contracts}
    lines: dict[str, list[str]] = {cid: [] for cid in by_id}
    for cid, figure_lines in _figure_changes(services, by_id, since, until).items():
        lines[cid] += figure_lines
    for cid, late in _late_returns(services, by_id, since, until).items():
        lines[cid].append(SECTION_LATE.format(items="; ".join(late)))
    for cid, items in _incident_changes(services, by_id, since, until).items():
        lines[cid].append(SECTION_INCIDENTS.format(items="; ".join(items)))
    for cid, items in _actions_due(services, by_id, next_at).items():
        lines[cid].append(SECTION_ACTIONS.format(items="; ".join(items)))
    return {cid: DigestSection(cid, by_id[cid].name, tuple(ls)) for cid, ls in lines.items()}


def _figure_changes(
    services: Services, by_id: dict[str, Contract], since: datetime, until: datetime
) -> dict[str, list[str]]:
    versions = versions_frame(services.db, by_id)
    if versions.empty:
        return {}
    stamps = versions["submitted_at"]
    arrived = versions[(stamps > pd.Timestamp(since)) & (stamps <= pd.Timestamp(until))]
    if arrived.empty:
        return {}
    moved = set(arrived["contract"])
    mine = versions[versions["contract"].isin(moved)]
    states = pd.concat(
        [
            current_as_of(mine, moment=since).assign(state=0),
            current_as_of(mine, moment=until).assign(state=1),
        ],
        ignore_index=True,
    )
    frame = evaluate_states({cid: by_id[cid] for cid in moved}, states)
    out: dict[str, list[str]] = {}
    for cid, own in frame.groupby("contract", sort=False):
        contract = by_id[str(cid)]
        then = _ratings(own[own["state"] == 0])
        now = _ratings(own[own["state"] == 1])
        here = arrived[arrived["contract"] == cid]
        out[contract.id] = _figure_lines(contract, here, then, now)
    return out


def _figure_lines(
    contract: Contract,
    arrived: pd.DataFrame,
    then: dict[tuple[str, str, int], Any],
    now: dict[tuple[str, str, int], Any],
) -> list[str]:
    by_label = {(key[0], r.period): key for key, r in now.items()}
    units = {code: c.unit for code, c in compiled(contract).items()}
    order = {k.code: i for i, k in enumerate(contract.kpis)}
    reds: list[str] = []
    greens: list[str] = []
    critical: list[str] = []
    changed = dict.fromkeys(zip(arrived["kpi"], arrived["period"], strict=True))
    for kpi, period in sorted(changed, key=lambda kp: (order.get(kp[0], 0), kp[1])):
        key = by_label.get((kpi, period))
        if key is None:
            continue
        row = now[key]
        prior = then.get(key)  # the same figure at the last digest, if it was in then
        was = prior or then.get((key[0], key[1], key[2] - 1))
        text = _kpi_line(kpi, period, row.value, units.get(kpi, ""))
        if row.rag == "red" and (was is None or was.rag != "red"):
            reds.append(text)
        elif row.rag == "green" and was is not None and was.rag in ("amber", "red"):
            greens.append(text)
        if bool(row.critical) and not (prior is not None and bool(prior.critical)):
            critical.append(text)
    return [
        template.format(items="; ".join(items))
        for template, items in (
            (SECTION_RED, reds),
            (SECTION_GREEN, greens),
            (SECTION_CRITICAL, critical),
        )
        if items
    ]


def _late_returns(
    services: Services, by_id: dict[str, Contract], since: datetime, until: datetime
) -> dict[str, list[str]]:
    first = since.astimezone(LONDON).date() - timedelta(days=1)
    last = until.astimezone(LONDON).date()
    due: dict[str, list[Any]] = {}
    for cid, contract in by_id.items():
        cal = calendar_for(contract)
        if cal is None:
            continue
        for r in cal.returns_due_between(first, last):
            late_from = datetime.combine(r.due_date + timedelta(days=1), time(), LONDON)
            if since < _utc(late_from) <= until:
                due.setdefault(cid, []).append(r)
    if not due:
        return {}
    query = (
        select(FigureRecord.contract_id, FigureRecord.period_label)
        .where(FigureRecord.contract_id.in_(sorted(due)))
        .distinct()
    )
    with services.db.session(read_only=True) as session:
        received = {(c, p) for c, p in session.execute(query)}
    out: dict[str, list[str]] = {}
    for cid, returns in due.items():
        late = [
            f"{r.name} for {r.period.label} (due {r.due_date:%a %-d %b})"
            for r in returns
            if (cid, r.period.label) not in received
        ]
        if late:
            out[cid] = late
    return out


def _incident_changes(
    services: Services, by_id: dict[str, Contract], since: datetime, until: datetime
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for incident in IncidentRepository(services.db).find(list(by_id), open_only=True):
        opened = since < _utc(incident.opened_at) <= until
        overdue = since < _utc(incident.deadline) <= until
        if opened or overdue:
            state = "now overdue" if overdue else f"report due {_when(incident.deadline)}"
            out.setdefault(incident.contract_id, []).append(
                f"#{incident.id} {incident.label} opened {_when(incident.opened_at)}, {state}"
            )
    return out


def _actions_due(
    services: Services, by_id: dict[str, Contract], next_at: datetime
) -> dict[str, list[str]]:
    last = next_at.astimezone(LONDON).date()
    out: dict[str, list[str]] = {}
    for plan in ActionPlanService(services).list(list(by_id), open_only=True):
        if plan.state not in WORKING:
            continue
        for action in plan.open_actions():
            if action.due <= last:
                out.setdefault(plan.contract_id, []).append(
                    f"plan #{plan.id} action {action.number} “{action.description}” "
                    f"({action.owner}) due {action.due:%a %-d %b}"
                )
    return out


@dataclass
class DigestComposer:
    """Builds digests when they are delivered (``services.hooks.composers["digest"]``).

    The first digest built for a moment claims the window of every digest due then in one
    statement (each subscription's last moment moves to this one), and each contract's section
    for a window is kept for a minute, so the digests of one moment (every subscriber's Monday
    09:00) cost one write and one build per contract between them. A digest the batch did not
    claim (a retry, another replica got there first) claims its own window.
    """

    ttl: float = SECTION_TTL_S
    clock: Callable[[], float] = monotonic
    _cache: dict[tuple[str, datetime, datetime, datetime], tuple[float, DigestSection]] = field(
        default_factory=dict
    )
    _windows: dict[tuple[int, datetime], tuple[float, Subscription, datetime]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, services: Services, policy: AccessPolicy | None, message: OutboxMessage
    ) -> Reply | None:
        step = message.step or ""
        if not step.startswith("digest-") or not step[7:].isdigit():
            return None
        sub_id, due = int(step[7:]), _utc(message.due_at)
        window = self._window(sub_id, due)
        if window is None:
            self._claim_moment(services, due)
            window = self._window(sub_id, due)
        if window is None:
            with services.db.session() as session:
                claimed = _claim_window(session, sub_id, due)
                if claimed is None:
                    return None
                window = _subscription(claimed[0]), claimed[1]
        sub, since = window
        return self.build(services, policy, sub, since, due)

    def _window(self, sub_id: int, due: datetime) -> tuple[Subscription, datetime] | None:
        with self._lock:
            hit = self._windows.pop((sub_id, due), None)
        if hit is None or self.clock() - hit[0] >= self.ttl:
            return None
        return hit[1], hit[2]

    def _claim_moment(self, services: Services, due: datetime) -> None:
        """Claim the windows of every digest due at ``due`` at once (see the class)."""
        table = cast(Table, SubscriptionRecord.__table__)
        with services.db.session(read_only=True) as session:
            rows = session.execute(
                select(table.c.id, table.c.frequency, table.c.created_at).where(
                    table.c.kind == "digest",
                    table.c.created_at < due,
                    or_(table.c.last_digest_at.is_(None), table.c.last_digest_at < due),
                )
            ).all()
        ids = [i for i, freq, created in rows if due in digest_moments(freq, _utc(created), due)]
        if not ids:
            return
        statement = (
            update(table)
            .where(
                table.c.id.in_(ids),
                or_(table.c.last_digest_at.is_(None), table.c.last_digest_at < due),
            )
            .values(previous_digest_at=table.c.last_digest_at, last_digest_at=due)
            .returning(*table.c)
        )
        with services.db.session() as session:
            claimed = [SubscriptionRecord(**dict(r._mapping)) for r in session.execute(statement)]
        now = self.clock()
        with self._lock:
            if len(self._windows) > 50_000:
                self._windows.clear()
            for record in claimed:
                since = record.previous_digest_at or record.created_at
                self._windows[(record.id, due)] = (now, _subscription(record), since)

    def build(
        self,
        services: Services,
        policy: AccessPolicy | None,
        sub: Subscription,
        since: datetime,
        until: datetime,
    ) -> Reply | None:
        """The digest of ``sub`` for ``(since, until]``; None when its owner may see none of
        its contracts any more."""
        rules = policy_for(services, policy)
        who = identify(rules, sub)
        wanted = list(sub.contracts) or services.contract_ids()
        visible = [c for c in wanted if rules.can(who, "view", c)]
        if not visible:
            return None
        next_at = next_digest(sub.frequency or "weekly", until)
        contracts = [c for c in (services.contract(cid) for cid in visible) if c is not None]
        found = self.sections(services, contracts, _utc(since), until, next_at)
        sections = [found[c.id] for c in contracts if found[c.id].lines]
        word = FREQUENCY_WORDS.get(sub.frequency or "", "")
        title = DIGEST_TITLE.format(frequency=word, since=_when(since), until=_when(until))
        if not sections:
            what = ", ".join(sub.contracts) if sub.contracts else DIGEST_CONTRACTS_ALL
            return Reply(title, DIGEST_NOTHING.format(what=what, since=_when(since)))
        text = "\n".join(f"*{s.contract_id}* ({s.name})\n" + "\n".join(s.lines) for s in sections)
        return Reply(title, text)

    def sections(
        self,
        services: Services,
        contracts: Sequence[Contract],
        since: datetime,
        until: datetime,
        next_at: datetime,
    ) -> dict[str, DigestSection]:
        """Each contract's section for the window: kept ones reused, the rest built together."""
        now = self.clock()
        out: dict[str, DigestSection] = {}
        with self._lock:
            for c in contracts:
                hit = self._cache.get((c.id, since, until, next_at))
                if hit is not None and now - hit[0] < self.ttl:
                    out[c.id] = hit[1]
        missing = [c for c in contracts if c.id not in out]
        if missing:
            built = changes(services, missing, since, until, next_at)
            with self._lock:
                if len(self._cache) + len(built) > _SECTION_CACHE:
                    self._cache.clear()
                for cid, section in built.items():
                    self._cache[(cid, since, until, next_at)] = (now, section)
            out.update(built)
        return out
