"""Migrations carry a running store's data forward: an upgrade changes no answer a user had."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from kpibot.app.wiring import services_for_database
from kpibot.core.settings import Settings
from kpibot.features import alerts
from kpibot.store.database import Database
from kpibot.store.schema import UTCDateTime
from tests.conftest import ACCESS_FILE

# The two tables as they stood at revision 0007, before alerts existed.
CONTRACTS_0007 = sa.table(
    "contracts",
    sa.column("id"),
    sa.column("name"),
    sa.column("provider_name"),
    sa.column("commissioner_name"),
    sa.column("definition", sa.JSON()),
    sa.column("content_hash"),
    sa.column("loaded_at", UTCDateTime()),
    sa.column("loaded_by"),
)
SUBMISSIONS_0007 = sa.table(
    "submissions",
    sa.column("id"),
    sa.column("contract_id"),
    sa.column("submitted_by"),
    sa.column("submitted_at", UTCDateTime()),
    sa.column("source"),
    sa.column("row_count"),
)


def test_submissions_from_before_alerts_are_not_announced_as_news_after_the_upgrade(
    bare_db: Database, clock
) -> None:
    # A store at 0007 holds yesterday's chat submission; alerts arrive with 0008. The tick's
    # catch-up looks back two days for submissions whose alerts were never worked out: without a
    # run recorded for the old ones, the upgrade would send their alerts as if they were new.
    bare_db.upgrade("0007")
    yesterday = clock() - timedelta(days=1)
    with bare_db.engine.begin() as connection:
        connection.execute(
            sa.insert(CONTRACTS_0007).values(
                id="old-contract",
                name="Old",
                provider_name="P",
                commissioner_name="C",
                definition={},
                content_hash="0" * 64,
                loaded_at=yesterday,
                loaded_by="test",
            )
        )
        connection.execute(
            sa.insert(SUBMISSIONS_0007).values(
                id=41,
                contract_id="old-contract",
                submitted_by="U-PROVIDER",
                submitted_at=yesterday,
                source="chat",
                row_count=3,
            )
        )

    bare_db.upgrade()

    with bare_db.engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT submission_id, rows FROM alert_runs ORDER BY submission_id")
        ).all()
    assert [tuple(run) for run in runs] == [(41, 0)]
    services = services_for_database(bare_db, Settings(access_file=ACCESS_FILE), clock)
    assert alerts.catch_up(services, None, clock()) == 0
