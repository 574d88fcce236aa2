"""Channels bound to contracts with ``kpi bind``, and the conversation references bots post to.

A binding lets people leave the contract out (``status C7`` in the trust's channel) and makes the
channel a target for the contract's reminders, escalations and summaries. Bindings in the access
file (``channels:``) are the administrator's; bindings stored here are made in chat, by a
commissioner, and audited. ``channel_contract`` reads both, the access file first.

A conversation reference is what a Teams bot needs to post unprompted: above all the
``serviceUrl`` the conversation was last seen on. ``ConversationStore`` keeps one per
conversation from the first event there, and refreshes it when the service URL moves.

>>> bind(db, "teams", "19:abc@thread.tacv2", "childrens-trust", actor="U1", now=now)  # doctest: +SKIP
>>> bound_contract(services, "teams", "19:abc@thread.tacv2")  # doctest: +SKIP
'childrens-trust'
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from kpibot.core.services import Services
from kpibot.store.audit import add_event
from kpibot.store.database import Database
from kpibot.store.schema import BindingRecord, ConversationRecord

Target = tuple[str, str]
# A stored reference is rewritten at most this often when nothing in it changed (last_seen only).
REFRESH_SECONDS = 3600.0
_CACHE_LIMIT = 50_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _insert(db: Database) -> Any:
    return postgresql.insert if db.dialect == "postgresql" else sqlite.insert


# ---------------------------------------------------------------------- bindings
def bind(
    db: Database, platform: str, channel: str, contract_id: str, *, actor: str, now: datetime
) -> str | None:
    """Bind ``channel`` to ``contract_id`` (replacing any stored binding) and audit it, atomically.

    Returns the contract the channel was bound to before, if any.
    """
    with db.session() as session:
        previous = session.get(BindingRecord, (platform, channel))
        before = previous.contract_id if previous is not None else None
        values = {
            "platform": platform,
            "channel": channel,
            "contract_id": contract_id,
            "bound_by": actor,
            "bound_at": now,
        }
        statement = _insert(db)(BindingRecord).values(**values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["platform", "channel"],
                set_={k: statement.excluded[k] for k in ("contract_id", "bound_by", "bound_at")},
            )
        )
        add_event(
            session,
            at=now,
            actor=actor,
            action="bind",
            contract_id=contract_id,
            subject=f"{platform}:{channel}"[:300],
            outcome="ok",
            detail={"platform": platform, "channel": channel, "previous": before},
        )
    return before


def stored_binding(db: Database, platform: str, channel: str | None) -> str | None:
    """The contract ``channel`` was bound to with ``kpi bind``, if any."""
    if not channel:
        return None
    with db.session(read_only=True) as session:
        return session.scalar(
            select(BindingRecord.contract_id).where(
                BindingRecord.platform == platform, BindingRecord.channel == channel
            )
        )


def bound_contract(services: Services, platform: str, channel: str | None) -> str | None:
    """The contract stored for ``channel`` on ``platform`` (not the access file's bindings)."""
    return stored_binding(services.db, platform, channel)


def bindings_by_contract(db: Database) -> dict[str, list[Target]]:
    """Every stored binding as ``{contract_id: [(platform, channel), …]}``, for the scheduler."""
    out: dict[str, list[Target]] = defaultdict(list)
    with db.session(read_only=True) as session:
        rows = session.execute(
            select(
                BindingRecord.contract_id, BindingRecord.platform, BindingRecord.channel
            ).order_by(BindingRecord.bound_at)
        )
        for contract_id, platform, channel in rows:
            out[contract_id].append((platform, channel))
    return dict(out)


# ---------------------------------------------------------------------- conversation references
@dataclass(frozen=True)
class ConversationRef:
    """A conversation a bot may post to: where (service URL), which tenant, what kind, as whom."""

    platform: str
    conversation_id: str
    service_url: str
    bot_id: str
    tenant_id: str | None = None
    conversation_type: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)


class ConversationStore:
    """Conversation references by (platform, conversation id), written on first sight.

    Every inbound activity offers its reference; only a new conversation, a moved service URL or
    an hour-old ``last_seen`` costs a write, so a busy conversation does not write per message.

    >>> store = ConversationStore(db)  # doctest: +SKIP
    >>> store.remember(ConversationRef("teams", "19:a@thread.tacv2", "https://smba…", "28:bot"))  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = _utc_now,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._seen: dict[Target, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def is_fresh(self, ref: ConversationRef) -> bool:
        """Whether ``ref`` was stored, unchanged, within the refresh interval (no database call)."""
        with self._lock:
            seen = self._seen.get((ref.platform, ref.conversation_id))
        return (
            seen is not None
            and seen[0] == ref.service_url
            and time.monotonic() - seen[1] < self.refresh_seconds
        )

    def remember(self, ref: ConversationRef) -> bool:
        """Store ``ref`` if it is new or changed (or due a refresh); True when it wrote."""
        if self.is_fresh(ref):
            return False
        key = (ref.platform, ref.conversation_id)
        now_mono = time.monotonic()
        now = self.clock()
        values = {
            "platform": ref.platform,
            "conversation_id": ref.conversation_id,
            "service_url": ref.service_url,
            "tenant_id": ref.tenant_id,
            "conversation_type": ref.conversation_type,
            "bot_id": ref.bot_id,
            "reference": ref.reference,
            "first_seen": now,
            "last_seen": now,
        }
        statement = _insert(self.db)(ConversationRecord).values(**values)
        changed = (
            "service_url",
            "tenant_id",
            "conversation_type",
            "bot_id",
            "reference",
            "last_seen",
        )
        with self.db.session() as session:
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["platform", "conversation_id"],
                    set_={k: statement.excluded[k] for k in changed},
                )
            )
        with self._lock:
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            self._seen[key] = (ref.service_url, now_mono)
        return True

    def get(self, platform: str, conversation_id: str) -> ConversationRef | None:
        """The stored reference for a conversation, or None if the bot was never there."""
        with self.db.session(read_only=True) as session:
            row = session.get(ConversationRecord, (platform, conversation_id))
            if row is None:
                return None
            return ConversationRef(
                row.platform,
                row.conversation_id,
                row.service_url,
                row.bot_id,
                row.tenant_id,
                row.conversation_type,
                dict(row.reference),
            )
