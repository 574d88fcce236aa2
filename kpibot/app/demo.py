"""``kpibot demo``: a fresh SQLite database, the four seed contracts, and the console adapter.

With a terminal it opens a prompt; without one (``make demo </dev/null``) it runs a scripted tour
of every verb and exits 0. ``--run "/kpi status childrens-trust"`` runs one command and exits.

The clock is pinned to 20 February 2020 (inside the seed contracts) unless ``KPIBOT_TODAY`` or
``--today`` says otherwise, so figures, due dates and lateness read as they did then.

>>> # run_demo(DemoOptions(run=["/kpi status childrens-trust"]))
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from kpibot.app.wiring import build_bot, build_services, services_for_database
from kpibot.chat.console import ConsoleAdapter
from kpibot.commands.bot import Bot
from kpibot.core.settings import DATA_DIR, Settings
from kpibot.engine.calendar import LONDON
from kpibot.features.summary import composer
from kpibot.scheduler.dispatch import Dispatcher
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.outbox import OutboxRepository

DEMO_TODAY = date(2020, 2, 20)

GOOD_RETURN = (
    "kpi,period,value,note\nS11,2019/20 Q3,98,RI+ from the case file audit\n"
    "S11,2019/20 Q2,97,RI+ from the case file audit\n"
)
BAD_RETURN = (
    "kpi,period,numerator,denominator\nC99,2019/20 Q3,5,10\nS25,2019/20 Q3,12,10\n"
    "S11,2025/26 Q1,1,2\nS11,2019/20 Q3,abc,10\n"
)

# Each step: (user, channel, command). Lines starting with '#' are printed as narration.
TOUR: list[tuple[str, str | None, str]] = [
    ("", None, "# kpibot demo — the same /kpi commands as in Slack, on the four seed contracts."),
    ("U-COMMISSIONER", None, "/kpi whoami"),
    ("U-COMMISSIONER", None, "/kpi help"),
    ("U-COMMISSIONER", None, "/kpi status"),
    ("U-COMMISSIONER", None, "/kpi status childrens-trust"),
    ("U-COMMISSIONER", None, "/kpi status childrens-trust C7"),
    ("U-COMMISSIONER", None, "/kpi chart childrens-trust C7"),
    ("", None, "# A provider submits a figure: preview first, then confirm."),
    ("U-TRUST", "C-TRUST", "/kpi whoami"),
    ("U-TRUST", "C-TRUST", "/kpi submit S25 2019/20 Q3 8/100"),
    ("", None, "# Changing a figure already in is an amendment and needs a reason."),
    ("U-TRUST", "C-TRUST", "/kpi submit C7 2019/20 Q3 45%"),
    (
        "U-TRUST",
        "C-TRUST",
        "/kpi submit C7 2019/20 Q3 45% reason: two adoptions recoded after audit",
    ),
    ("U-TRUST", "C-TRUST", "/kpi status C7 2019/20 Q3"),
    ("", None, "# Bad input gets one helpful sentence and changes nothing."),
    ("U-TRUST", "C-TRUST", "/kpi submit C7 2019/20 Q4 45%"),
    ("U-TRUST", "C-TRUST", "/kpi submit C1 2019/20 Q3 120/100"),
    ("U-TRUST", "C-TRUST", "/kpi status childrns-trust"),
    ("U-TRUST", None, "/kpi status healthy-child-0-19"),
    ("U-TRUST", None, "/kpi frobnicate"),
    ("", None, "# Monitoring returns as files: all rows or none."),
    ("U-TRUST", "C-TRUST", "/kpi import childrens-trust @{bad}"),
    ("U-TRUST", "C-TRUST", "/kpi import childrens-trust @{good}"),
    ("", None, "# The quarterly return: narrative, submission, a query, an amendment, approval."),
    (
        "U-TRUST",
        "C-TRUST",
        '/kpi narrative childrens-trust 2019/20 Q3 working: "Case file audits improving" '
        'challenges: "Adoption matching delays" actions: "Extra panel dates in Q4"',
    ),
    ("U-TRUST", "C-TRUST", "/kpi return childrens-trust 2019/20 Q3 submit"),
    ("U-COMMISSIONER", None, "/kpi status childrens-trust"),
    (
        "U-COMMISSIONER",
        None,
        '/kpi query childrens-trust 2019/20 Q3 "C9 looks low: please recheck the pathway plan count"',
    ),
    (
        "U-TRUST",
        "C-TRUST",
        "/kpi submit C9 2019/20 Q3 69% reason: two reviews missed from the count",
    ),
    ("U-TRUST", "C-TRUST", "/kpi return childrens-trust 2019/20 Q3 submit"),
    ("U-COMMISSIONER", None, "/kpi approve childrens-trust 2019/20 Q3"),
    ("U-COMMISSIONER", None, "/kpi status childrens-trust C9"),
    ("", None, "# Money, compliance and underperformance."),
    ("U-COMMISSIONER", None, "/kpi payments healthy-child-0-19 0"),
    ("U-COMMISSIONER", None, "/kpi compliance one-you-lifestyle"),
    ("U-COMMISSIONER", None, "/kpi actionplan childrens-trust detect"),
    (
        "U-COMMISSIONER",
        None,
        '/kpi actionplan childrens-trust update 1 add-action "Weekly adoption panel" '
        'owner:"Head of Adoption" due:2020-03-31',
    ),
    ("U-COMMISSIONER", None, "/kpi actionplan childrens-trust update 1 agree"),
    ("U-COMMISSIONER", None, "/kpi due"),
    ("", None, "# The quarterly performance report for the board, as XLSX, PDF and HTML."),
    ("U-COMMISSIONER", None, "/kpi report childrens-trust 2019/20 Q3"),
    ("U-COMMISSIONER", None, "/kpi report childrens-trust 2019/20 Q3 pdf"),
    ("U-COMMISSIONER", None, "/kpi report childrens-trust 2019/20 Q3 html"),
]


@dataclass
class DemoOptions:
    run: list[str] = field(default_factory=list)
    user: str = "U-COMMISSIONER"
    today: date | None = None
    database: str | None = None
    interactive: bool | None = None
    extra_steps: list[Callable[[Bot, ConsoleAdapter], None]] = field(default_factory=list)


def build_demo_bot(options: DemoOptions, workdir: Path) -> Bot:
    settings = Settings()
    updates: dict[str, object] = {"today": options.today or settings.today or DEMO_TODAY}
    updates["database_url"] = options.database or f"sqlite:///{workdir / 'kpibot-demo.db'}"
    # Outside a checkout or a folder made by `kpibot init`: the seeds that ship in the package.
    if not settings.contracts_dir.is_dir():
        updates["contracts_dir"] = DATA_DIR / "contracts"
    if not settings.access_file.is_file():
        updates["access_file"] = DATA_DIR / "access.yaml"
    settings = settings.model_copy(update=updates)
    services = build_services(settings)
    services.db.upgrade()
    services.load_contracts([settings.contracts_dir], actor="demo")
    return build_bot(settings, services)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    with tempfile.TemporaryDirectory(prefix="kpibot-demo-") as tmp:
        workdir = Path(tmp)
        bot = build_demo_bot(options, workdir)
        interactive = sys.stdin.isatty() if options.interactive is None else options.interactive
        chart_dir = Path(bot.services.settings.chart_dir)
        adapter = ConsoleAdapter(
            bot,
            user=options.user,
            console=console,
            chart_dir=chart_dir,
            interactive=interactive and not options.run,
        )
        console.print(
            f"[dim]kpibot demo · clock pinned to {bot.services.now():%-d %B %Y} · "
            f"{len(bot.services.contracts.ids())} contracts loaded[/dim]\n"
        )
        if options.run:
            for line in options.run:
                adapter.run_line(line)
            return 0
        if interactive:
            return _prompt(adapter, console)
        return _tour(adapter, console, workdir, options)


def _tour(adapter: ConsoleAdapter, console: Console, workdir: Path, options: DemoOptions) -> int:
    good, bad = workdir / "q3-return.csv", workdir / "q3-return-with-errors.csv"
    good.write_text(GOOD_RETURN, encoding="utf-8")
    bad.write_text(BAD_RETURN, encoding="utf-8")
    adapter.auto_confirm = True
    for user, channel, command in TOUR:
        if command.startswith("#"):
            console.rule(command.lstrip("# "))
            continue
        adapter.user, adapter.channel = user, channel
        line = command.format(good=good, bad=bad)
        console.print(f"[bold]{user}{' in ' + channel if channel else ''}>[/bold] {line}")
        adapter.run_line(line)
    for step in options.extra_steps:
        step(adapter.bot, adapter)
    clock_tour(adapter, console)
    console.rule("End of the tour")
    return 0


def _prompt(adapter: ConsoleAdapter, console: Console) -> int:
    console.print(
        "Type /kpi commands as in Slack (e.g. [cyan]/kpi status childrens-trust[/cyan]). "
        "[cyan]as U-TRUST[/cyan] switches user, [cyan]in C-TRUST[/cyan] switches channel, "
        "[cyan]quit[/cyan] leaves."
    )
    while True:
        try:
            line = console.input(f"[bold]{adapter.user}>[/bold] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if line.strip().lower() in ("quit", "exit", "q"):
            return 0
        adapter.run_line(line)


class _SimClock:
    """A clock the demo moves by hand: the scheduler, the store and commands all read it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class _ChatDeliverer:
    """Shows each scheduled message the way the console renders any reply."""

    def __init__(self, adapter: ConsoleAdapter, console: Console) -> None:
        self.adapter, self.console = adapter, console

    def deliver(self, message: Any, reply: Any) -> str | None:
        when = message.due_at.astimezone(LONDON)
        self.console.print(
            f"[dim]{when:%a %-d %b %H:%M} · {message.kind} → {message.audience} "
            f"({message.platform} {message.channel})[/dim]"
        )
        self.adapter.render(reply)
        return None

    def find_delivered(self, message: Any) -> str | None:
        return None


def clock_tour(adapter: ConsoleAdapter, console: Console) -> None:
    """Run the live scheduler on an accelerated clock through January 2020 (one day per tick)."""

    console.rule(
        "Reminders, incidents and a quarterly summary on an accelerated clock (January 2020)"
    )
    base = adapter.bot
    clock = _SimClock(datetime(2020, 1, 1, 8, 0, tzinfo=LONDON))
    services = services_for_database(base.services.db, base.services.settings, clock)
    bot = Bot(services, base.policy, base.secret)
    sim = ConsoleAdapter(
        bot, user="U-PSYCH", console=console, chart_dir=adapter.chart_dir, auto_confirm=True
    )
    deliverer = _ChatDeliverer(sim, console)
    tick = ReminderTick(services, base.policy, start=clock.now)
    dispatcher = Dispatcher(
        OutboxRepository(services.db),
        {"console": deliverer, "slack": deliverer, "teams": deliverer},
        composer(services),
        pacing={},
        sleep=lambda _s: None,
    )
    steps = {
        date(2020, 1, 8): (
            "U-HEALTH",
            None,
            '/kpi incident healthy-child-0-19 sui "Serious incident at a clinic"',
        ),
        date(2020, 1, 14): ("U-PSYCH", None, "/kpi submit one-psychology D-1 2019/20 Q3 14"),
    }
    day = clock.now.date()
    while day <= date(2020, 1, 20):
        for hour in (8, 9, 13, 18):
            clock.now = datetime(day.year, day.month, day.day, hour, 5, tzinfo=LONDON)
            if hour == 13 and day in steps:
                sim.user, sim.channel, line = steps[day]
                console.print(f"[bold]{sim.user} at {clock.now:%a %-d %b %H:%M}>[/bold] {line}")
                sim.run_line(line)
            tick.tick(clock.now)
            dispatcher.drain(clock.now)
        day += timedelta(days=1)
