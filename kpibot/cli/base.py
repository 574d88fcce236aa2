"""What every CLI module shares: the one-sentence error and the services a command runs on.

``UserError`` lives here, not in ``kpibot.cli``: under ``python -m kpibot.cli`` that module runs
as ``__main__``, and feature modules importing it would get a second, never-caught class.

>>> # raise UserError("There is no contract 'x'.")  -> printed, exit code 2
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kpibot.app.wiring import build_services

if TYPE_CHECKING:
    from kpibot.core.services import Services
    from kpibot.engine.model import Contract


class UserError(Exception):
    """A problem the user can fix; printed as one sentence, exit code 2."""


def services_for(args: argparse.Namespace) -> Services:
    """Services from the environment, with ``--database`` if given, on the latest schema."""
    from kpibot.core.settings import Settings

    settings = Settings()
    if getattr(args, "database", None):
        settings = settings.model_copy(update={"database_url": args.database})
    services = build_services(settings)
    services.db.upgrade()
    return services


def contract_for(services: Services, contract_id: str) -> Contract:
    """The loaded contract ``contract_id``, or a ``UserError`` suggesting the nearest names."""
    from kpibot.core import texts
    from kpibot.files.figures import suggest

    contract = services.contract(contract_id)
    if contract is None:
        ids = services.contracts.ids()
        hint = suggest(contract_id, ids)
        if not ids:
            hint += (
                " No contracts are loaded yet: run `kpibot contracts load config/contracts` first."
            )
        raise UserError(texts.UNKNOWN_CONTRACT.format(contract=contract_id, hint=hint))
    return contract
