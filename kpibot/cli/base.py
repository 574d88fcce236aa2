"""What every CLI module shares: the one-sentence error and the services a command runs on.

``UserError`` lives here, not in ``kpibot.cli``: under ``python -m kpibot.cli`` that module runs
as ``__main__``, and feature modules importing it would get a second, never-caught class.

>>> # raise UserError("There is no contract 'x'.")  -> printed, exit code 2
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kpibot.core.services import Services
    from kpibot.engine.model import Contract


log = logging.getLogger("kpibot")

# After `serve` or `scheduler run` has stopped, how long work still on thread pools may take.
EXIT_GRACE_S = 1.5


class UserError(Exception):
    """A problem the user can fix; printed as one sentence, exit code 2."""


def services_for(args: argparse.Namespace) -> Services:
    """Services from the environment, with ``--database`` if given, on the latest schema."""
    # Loaded here, not at the top, for start-up speed: the whole bot only when a command runs.
    from kpibot.app.wiring import build_services
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


def exit_by(seconds: float, code: int = 0) -> None:
    """Make sure the process has exited ``code`` within ``seconds`` from now.

    After ``serve`` returns, Python waits for work still running on thread pools (a Slack
    listener finishing an answer) before it exits; that is allowed ``seconds``, then the process
    leaves anyway, so a stuck call can never hold a shutdown up. Python's last garbage collection
    over a large heap took seconds too (a measured 4 s with nothing warm); everything alive now is
    exempted from it (``gc.freeze``), as nothing needs collecting on the way out.
    """

    def leave() -> None:
        log.warning("shutdown: work still running after %.0f s; exiting anyway", seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(code)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
    gc.freeze()
