"""Platform-neutral commands through the bot: what a commissioner and a provider see and can do."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpibot.core.protocol import Attachment, Request


def ask(bot, text, user="U-COMMISSIONER", channel=None, **kw):
    return bot.handle(Request.from_text(text, user=user, platform="console", channel=channel, **kw))


def test_status_lists_reds_and_ambers_first(bot):
    r = ask(bot, "status childrens-trust")
    assert r.ok and "2019/20 Q3" in r.title
    assert "6 red" in r.text and "8 amber" in r.text
    rags = [row[0].rag for row in r.rows]
    assert rags == sorted(rags, key=["red", "amber"].index)
    assert r.rows[0][0].text == "C7" and r.rows[0][2].text == "42%" and "60%" in r.rows[0][3].text


def test_status_of_one_kpi_explains_the_target_and_shows_history(bot):
    r = ask(bot, "status childrens-trust C13")
    assert "at most 140 days" in r.text and "Tolerance" in r.text and "lower is better" in r.text
    assert [row[0].text for row in r.rows][-1] == "2019/20 Q3" and len(r.rows) == 7


def test_channel_binding_supplies_the_contract(bot):
    r = ask(bot, "status C7", user="U-TRUST", channel="C-TRUST")
    assert r.ok and r.title == "childrens-trust · C7"


def test_no_argument_lists_the_users_contracts(bot):
    r = ask(bot, "status", user="U-TRUST")
    assert [row[0].text for row in r.rows] == ["childrens-trust"]


def test_submit_previews_then_confirms_once(bot, services):
    preview = ask(bot, "submit childrens-trust S25 2019/20 Q3 8/100", user="U-TRUST")
    assert preview.kind == "preview" and "8%" in preview.text
    token = preview.actions[0].token
    req = Request.from_text("confirm", user="U-TRUST", platform="console")
    done = bot.handle(replace(req, confirm_token=token))
    again = bot.handle(replace(req, confirm_token=token))
    assert done.kind == "done" and again.title == "Already recorded"
    assert len(services.figures.history("childrens-trust", "S25", "2019/20 Q3")) == 1
    assert any(
        a.action == "submit" and a.outcome == "ok"
        for a in services.audit.recent(10, "childrens-trust")
    )


def test_preview_reads_like_an_officer_would_say_it(bot):
    p = ask(bot, "submit childrens-trust C1 2019/20 Q3 86/100 reason: recount", user="U-TRUST")
    assert "86%* against a 90% target: *amber*" in p.text and "*replaces* 96%" in p.text


def test_amendment_without_reason_cannot_be_confirmed(bot):
    p = ask(bot, "submit childrens-trust C1 2019/20 Q3 86/100", user="U-TRUST")
    assert "needs a reason" in p.text and not any(a.token for a in p.actions)


def test_tampered_or_borrowed_confirmations_are_refused(bot, services):
    p = ask(bot, "submit childrens-trust S25 2019/20 Q3 8/100", user="U-TRUST")
    token = p.actions[0].token
    body, mac = token.rsplit(".", 1)
    forged = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB") + "." + mac
    r = bot.handle(
        replace(Request.from_text("x", user="U-TRUST", platform="console"), confirm_token=forged)
    )
    assert r.kind == "refusal"
    r2 = bot.handle(
        replace(Request.from_text("x", user="U-LIFESTYLE", platform="console"), confirm_token=token)
    )
    assert r2.kind == "refusal"
    assert services.figures.history("childrens-trust", "S25", "2019/20 Q3") == []


def test_a_provider_cannot_see_or_submit_another_providers_contract(bot, services):
    assert ask(bot, "status healthy-child-0-19", user="U-TRUST").kind == "refusal"
    r = ask(bot, "submit one-you-lifestyle DS-1 2019/20 Q1 90%", user="U-TRUST")
    assert r.kind == "refusal" and "can give you access" in r.text
    refusals = [a for a in services.audit.recent(20) if a.outcome == "refused"]
    assert {a.contract_id for a in refusals} >= {"healthy-child-0-19", "one-you-lifestyle"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("frobnicate", "I don't know `frobnicate`"),
        ("status childrns-trust", "Did you mean 'childrens-trust'"),
        ("status childrens-trust C99", "Did you mean 'C9'"),
        ("submit childrens-trust C1 2019/20 Q4 86%", "has not ended yet"),
        ("submit childrens-trust C1 2025/26 Q1 86%", "outside the contract"),
        ("submit childrens-trust C1 2019/20 Q3 86/0", "above zero"),
        ("submit childrens-trust C1 2019/20 Q3 abc", "not a number"),
        ("submit childrens-trust C1 2019/20 Q3 120/100", "above the denominator"),
        ("chart childrens-trust C7 --years x", "whole number"),
    ],
)
def test_bad_input_gets_one_helpful_sentence(bot, text, words):
    r = ask(bot, text)
    assert not r.ok
    assert words in (r.title + " " + r.text)


def test_chart_is_a_png(bot):
    r = ask(bot, "chart childrens-trust C7")
    assert r.chart is not None and r.chart[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_in_chat_reports_rejected_rows(bot, services):
    bad = Attachment("q3.csv", b"kpi,period,value\nS11,2019/20 Q3,98\nC99,2019/20 Q3,1\n")
    r = ask(bot, "import childrens-trust", user="U-TRUST", files=(bad,))
    assert r.kind == "error" and r.rows[0][0].text == "line 3, kpi"
    assert services.figures.current("childrens-trust", "S11") == []


def test_help_has_examples_for_every_verb(bot):
    for verb in bot.registry:
        r = ask(bot, f"help {verb}")
        assert "Usage" in r.text and "/kpi " in r.text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=80))
def test_any_text_gets_a_reply_never_an_exception(bot, text):
    r = ask(bot, text, user="U-TRUST")
    assert r.title and "Sorry, something went wrong" not in r.text


# ---------------------------------------------------------------------- input limits


def test_a_decimal_comma_is_refused_in_a_preview_showing_both_readings(bot, services):
    p = ask(bot, "submit childrens-trust S11 2019/20 Q3 4,5%", user="U-TRUST")
    assert p.kind == "error" and "'4,5%' could mean 4.5% or 45%" in p.text
    assert not p.actions  # no Confirm button, so nothing can be stored


def test_a_european_contract_reads_a_decimal_comma_in_chat(bot, services):
    contract = services.contract("childrens-trust")
    european = contract.model_copy(update={"number_style": "european"})
    services.store_contracts([european], actor="test", with_history=False)
    p = ask(bot, "submit childrens-trust S25 2019/20 Q3 4,5%", user="U-TRUST")
    assert p.kind == "preview" and "*4.5%*" in p.text
    p = ask(bot, "submit childrens-trust S25 2019/20 Q3 1.620/2.000", user="U-TRUST")
    assert p.kind == "preview" and "1620 of 2000" in p.text


def test_a_command_over_4000_characters_is_refused_at_once_in_one_sentence(bot, services):
    before = len(services.audit.recent(10_000))
    r = ask(bot, "incident childrens-trust sui " + "x" * 5000, user="U-TRUST")
    assert r.kind == "error" and r.text == (
        "That command is 5,029 characters long; kpibot reads commands of up to 4,000 "
        "characters, so shorten it (a long return goes in a CSV or XLSX file)."
    )
    assert len(services.audit.recent(10_000)) == before


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_in_a_command_are_refused_and_nothing_is_stored(bot, services, char):
    before = len(services.audit.recent(10_000))
    r = ask(bot, f'incident childrens-trust sui "Child hurt{char} at the centre"', user="U-TRUST")
    assert r.kind == "error" and f"control character (U+{ord(char):04X})" in r.text
    assert "Child hurt" not in r.text
    assert len(services.audit.recent(10_000)) == before


def test_tabs_and_line_breaks_are_ordinary_text(bot):
    r = ask(bot, 'incident childrens-trust sui "Child hurt\n\tat the centre"', user="U-TRUST")
    assert r.ok, r.text


@pytest.mark.parametrize("period", ["9999/00 Q4", "0000/01 Q1", "2019/21 Q5", "Jan 0000"])
def test_out_of_range_periods_are_refused_in_one_sentence(bot, period):
    for text in (
        f"status childrens-trust C1 {period}",
        f"submit childrens-trust C1 {period} 86/100",
        f"expenditure childrens-trust {period} actual:£1 projected:£1",
    ):
        r = ask(bot, text, user="U-COMMISSIONER")
        assert r.kind == "error", (text, r.title)
        assert "went wrong on our side" not in r.text and "\n" not in r.text.strip()


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (
            "incident childrens-trust sui " + "d" * 1001,
            "An incident description is limited to 1,000 characters; yours is 1 over.",
        ),
        (
            "submit childrens-trust S25 2019/20 Q3 8/100 " + "n" * 501,
            "A note is limited to 500 characters; yours is 1 over.",
        ),
        (
            "submit childrens-trust S25 2019/20 Q3 8/100 reason: " + "r" * 501,
            "A reason is limited to 500 characters; yours is 1 over.",
        ),
        (
            'expenditure childrens-trust 2019/20 Q3 actual:£1 projected:£1 correction:"'
            + "c" * 501
            + '"',
            "A correction's reason is limited to 500 characters; yours is 1 over.",
        ),
    ],
)
def test_free_text_over_its_limit_is_refused_with_a_clear_message(bot, services, command, words):
    r = ask(bot, command, user="U-TRUST")
    assert r.kind == "error"
    assert words in r.text


def test_formula_text_in_a_note_is_stored_exactly_as_typed(bot, services):
    note = '=HYPERLINK("http://evil.example","Click")'
    preview = ask(bot, f"submit childrens-trust S25 2019/20 Q3 8/100 {note}", user="U-TRUST")
    req = Request.from_text("confirm", user="U-TRUST", platform="console")
    assert bot.handle(replace(req, confirm_token=preview.actions[0].token)).kind == "done"
    (figure,) = services.figures.history("childrens-trust", "S25", "2019/20 Q3")
    assert figure.note == note.replace('"', "")  # the command's quotes group words, as ever
