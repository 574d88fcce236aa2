"""The one place that builds kpibot: services with the features' hooks, the bot, the deliverers
and the scheduler. Every entry point (CLI, server, demo, tests that run the whole product) starts
here, so a feature is plugged in by one line below and nowhere else.

>>> services = build_services(Settings(database_url="sqlite://"))
>>> len(services.hooks.status) > 0
True
"""

from __future__ import annotations

from datetime import datetime

from kpibot.chat.console import ConsoleDeliverer
from kpibot.commands.bot import Bot
from kpibot.core.access import AccessPolicy
from kpibot.core.services import Clock, Services
from kpibot.core.settings import Settings
from kpibot.features import (
    actionplan,
    alerts,
    compliance,
    expenditure,
    incidents,
    payments,
    returns,
    sanctions,
    subscriptions,
)
from kpibot.features.summary import composer
from kpibot.scheduler.delivery import Deliverer
from kpibot.scheduler.runner import SchedulerService
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.database import Database


def install_features(services: Services) -> Services:
    """Register what each feature adds to status, compliance and the scheduler (idempotent)."""
    hooks = services.hooks
    for status in (
        payments.status_lines,
        compliance.status_lines,
        actionplan.status_lines,
        expenditure.status_lines,
        sanctions.status_lines,
    ):
        if status not in hooks.status:
            hooks.status.append(status)
    for feature in (actionplan, expenditure):
        hooks.status_changed_by[feature.status_lines] = feature.STATUS_CHANGED_BY
        hooks.status_many[feature.status_lines] = feature.status_lines_many
    for section in (actionplan.open_plans_summary, expenditure.finance_summary):
        if section not in hooks.compliance:
            hooks.compliance.append(section)
    for provider in (
        actionplan.action_plan_messages,
        expenditure.finance_messages,
        sanctions.sanction_messages,
        alerts.sanction_money_messages,
        subscriptions.digest_messages,
    ):
        if provider not in hooks.messages:
            hooks.messages.append(provider)
    hooks.incident_clocks = incidents.open_incident_clocks
    hooks.missing_notes = returns.missing_notes
    hooks.composers.setdefault("digest", subscriptions.DigestComposer())
    for kind in alerts.ALERT_KINDS:
        hooks.composers[kind] = alerts.compose_alert
    if alerts.catch_up not in hooks.catch_up:
        hooks.catch_up.append(alerts.catch_up)
    return services


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """``Services`` on ``settings.database_url``, with every feature plugged in."""
    return install_features(Services.from_settings(settings, clock))


def services_for_database(db: Database, settings: Settings, clock: Clock | None = None) -> Services:
    """``Services`` on an open database (tests, benchmarks), with every feature plugged in."""
    return install_features(Services.for_database(db, settings, clock))


def build_bot(settings: Settings, services: Services | None = None) -> Bot:
    """The bot a process serves: its services, the access file's policy and the signing secret."""
    services = services or build_services(settings)
    return Bot(services, AccessPolicy.load(settings.access_file), Bot.secret_from(settings))


def deliverers_for(settings: Settings, services: Services | None = None) -> dict[str, Deliverer]:
    """The console always; Slack when a bot token is set; Teams when its app id is."""
    deliverers: dict[str, Deliverer] = {"console": ConsoleDeliverer(file_dir=settings.chart_dir)}
    if settings.slack_bot_token is not None:
        # Only a deployment with Slack pays for loading its SDK.
        from slack_sdk import WebClient

        from kpibot.chat.slack_deliverer import SlackDeliverer

        client = WebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url or WebClient.BASE_URL,
        )
        deliverers["slack"] = SlackDeliverer(client)
    if settings.teams_app_id is not None:
        # Only a deployment with Teams pays for loading its SDK.
        from kpibot.chat.teams import teams_deliverer

        teams = teams_deliverer(settings, services)
        if teams is not None:
            deliverers["teams"] = teams
    return deliverers


def scheduler_for(
    services: Services,
    policy: AccessPolicy | None,
    settings: Settings,
    since: datetime | None = None,
    **options: float,
) -> SchedulerService:
    """The scheduler as a deployment runs it, with the summary composer and every deliverer."""
    return SchedulerService(
        services,
        policy,
        deliverers_for(settings, services),
        composer=composer(services, policy),
        tick=ReminderTick(services, policy, start=since),
        **options,  # type: ignore[arg-type]
    )
