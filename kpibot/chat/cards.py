"""Render a ``Reply`` as a Teams Adaptive Card (1.5), and a chart as an inline image, within limits.

A card has a title, the text (Slack-style ``*bold*`` becomes Adaptive Card markdown), the rows as
a ``Table`` whose RAG cells are coloured (good, warning, attention) and keep their dot so colour is
never the only cue, the footer, and the actions as ``Action.Submit`` buttons. A button's ``data``
says what a click means: ``{"kpibot": {"command": …}}`` runs a command, ``{"kpibot": {"token": …}}``
confirms a signed preview, and a form's button carries ``{"kpibot": {"form": verb, "fields": […]}}``
while Teams adds the inputs' values beside it.

Teams refuses a bot message over about 100 KB (it advises 80 KB, and older clients stopped at
28 KB); base64 images are counted apart and may be up to 1024×1024 pixels and 1 MB. Cards are kept
under ``MAX_CARD_BYTES`` (28 KB, measured as UTF-16 as Teams measures) by dropping the last rows
with "…and N more"; a chart is downscaled to fit, or left out with a note when it cannot.

>>> from kpibot.commands.base import Cell, Reply
>>> card = reply_card(Reply("Status", "*2 red*", columns=["KPI"], rows=[[Cell("C7", "red")]]))
>>> [e["type"] for e in card["body"]]
['TextBlock', 'TextBlock', 'Table']
>>> card["body"][2]["rows"][1]["cells"][0]["style"]
'attention'
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

from kpibot.core.protocol import Action, Attachment, Cell, Form, Reply

Element = dict[str, Any]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
FILE_CONSENT_TYPE = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO_TYPE = "application/vnd.microsoft.teams.card.file.info"
CARD_VERSION = "1.5"
MAX_CARD_BYTES = 28 * 1024
MAX_ACTIONS = 6
MAX_LABEL = 60
MAX_TEXT = 5000
MAX_CHOICES = 100
MAX_IMAGE_BYTES = 1024 * 1024
MAX_IMAGE_SIDE = 1024
CANCEL_COMMAND = "cancel"
DATA_KEY = "kpibot"

RAG_STYLE = {"red": "attention", "amber": "warning", "green": "good"}
RAG_COLOR = {"red": "Attention", "amber": "Warning", "green": "Good"}
RAG_DOT = {"red": "🔴", "amber": "🟠", "green": "🟢", "grey": "⚪"}
ACTION_STYLE = {"primary": "positive", "danger": "destructive"}

CHART_TOO_BIG = "The chart is too large to show in Teams; ask for fewer years with `--years 1`."
FILE_OFFERED = "{name}: choose Allow to save it to your OneDrive and open it here."
FILE_ONLY_IN_CHAT = (
    "Teams lets a bot send files only in a 1:1 chat: message me `{command}` there for {name}."
)
FILE_NOT_HERE = "Teams lets a bot send files only in a 1:1 chat, so {name} is not attached here."


def reply_card(reply: Reply, max_bytes: int = MAX_CARD_BYTES) -> Element:
    """The reply as an Adaptive Card, cut to at most ``max_bytes`` (UTF-16) by dropping rows."""
    rows = list(reply.rows)
    text = reply.text
    while True:
        card = _card(reply, text, rows, len(reply.rows) - len(rows))
        if card_size(card) <= max_bytes:
            return card
        if rows:
            rows = rows[: max(0, min(len(rows) - 1, len(rows) * 3 // 4))]
        elif len(text) > 200:
            text = text[: len(text) * 3 // 4].rstrip() + "…"
        else:
            return card  # a title and buttons alone are far below any limit


def form_card(form: Form, text: str = "") -> Element:
    """A form as inputs: a choice set where the field has options, else a text input."""
    body: list[Element] = [_title(form.title)]
    if text.strip():
        body.append(_text_block(text))
    for f in form.fields:
        element: Element
        if f.options:
            choices = [{"title": o[:MAX_LABEL], "value": o} for o in f.options[:MAX_CHOICES]]
            element = {"type": "Input.ChoiceSet", "style": "compact", "choices": choices}
            if f.value in f.options:
                element["value"] = f.value
        else:
            element = {"type": "Input.Text", "isMultiline": f.multiline, "maxLength": 500}
            if f.placeholder:
                element["placeholder"] = f.placeholder
            if f.value:
                element["value"] = f.value
        element |= {"id": f.name, "label": f.label, "isRequired": not f.optional}
        if not f.optional:
            element["errorMessage"] = f"{f.label} is needed."
        body.append(element)
    data = {DATA_KEY: {"form": form.verb, "fields": [f.name for f in form.fields]}}
    action = {
        "type": "Action.Submit",
        "title": form.submit_label,
        "style": "positive",
        "data": data,
    }
    return _envelope(body, [action])


def card_size(card: Element) -> int:
    """The card's size as Teams counts it: its JSON encoded as UTF-16."""
    return len(json.dumps(card, ensure_ascii=False).encode("utf-16-le"))


def markdown(text: str) -> str:
    """Slack-style ``*bold*`` and ```code``` as Adaptive Card markdown (bold, and quotes).

    >>> markdown("*86%* against `a target`")
    '**86%** against “a target”'
    """
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"**\1**", text)
    return re.sub(r"`([^`\n]+)`", "“\\1”", out)


def chart_attachment(png: bytes, name: str) -> Element | None:
    """The chart as an inline image attachment (a data URI), downscaled to Teams' limits, or None."""
    fitted = fit_image(png)
    if fitted is None:
        return None
    uri = "data:image/png;base64," + base64.b64encode(fitted).decode("ascii")
    return {"contentType": "image/png", "contentUrl": uri, "name": name}


def file_consent(file: Attachment) -> Element:
    """A file consent card offering ``file`` (Teams asks the user before a bot may send a file,
    and only in a 1:1 chat). Accepting it sends back the command that makes the file again."""
    context = {DATA_KEY: {"command": file.command or ""}}
    return {
        "contentType": FILE_CONSENT_TYPE,
        "name": file.name,
        "content": {
            "description": FILE_OFFERED.format(name=file.name),
            "sizeInBytes": len(file.content),
            "acceptContext": context,
            "declineContext": context,
        },
    }


def file_info(name: str, content_url: str, unique_id: str, file_type: str) -> Element:
    """The card Teams shows for a file the bot has uploaded: it opens the file in place."""
    return {
        "contentType": FILE_INFO_TYPE,
        "contentUrl": content_url,
        "name": name,
        "content": {"uniqueId": unique_id, "fileType": file_type},
    }


def fit_image(
    png: bytes, max_bytes: int = MAX_IMAGE_BYTES, max_side: int = MAX_IMAGE_SIDE
) -> bytes | None:
    """``png`` if it is within ``max_side`` pixels and ``max_bytes``; else smaller, or None."""
    from PIL import Image  # here, not at the top, for start-up speed: only oversized charts need it

    try:
        image: Image.Image = Image.open(io.BytesIO(png))
        image.load()
    except (OSError, ValueError):
        return None
    if max(image.size) <= max_side and len(png) <= max_bytes:
        return png
    for _ in range(6):
        scale = min(1.0, max_side / max(image.size))
        if scale < 1.0:
            image = image.resize(
                (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            )
        out = io.BytesIO()
        # A palette keeps charts (a few flat colours) sharp at a fraction of the bytes.
        image.convert("RGB").quantize(colors=128).save(out, format="PNG", optimize=True)
        if len(out.getvalue()) <= max_bytes:
            return out.getvalue()
        max_side = int(max(image.size) * 0.7)
    return None


def fallback_text(reply: Reply) -> str:
    """The message's plain text, for notifications and clients that cannot show cards."""
    return (reply.title + (f"\n{reply.text}" if reply.text else ""))[:MAX_TEXT]


# ---------------------------------------------------------------------- building blocks
def _card(reply: Reply, text: str, rows: list[list[Cell]], hidden: int) -> Element:
    body: list[Element] = [_title(reply.title)]
    if text.strip():
        body.append(_text_block(text))
    if reply.columns and rows:
        body.append(_table(reply.columns, rows))
    if hidden:
        body.append(_subtle(f"…and {hidden} more rows."))
    if reply.footer:
        body.append(_subtle(reply.footer))
    return _envelope(body, [_action(a) for a in reply.actions[:MAX_ACTIONS]])


def _envelope(body: list[Element], actions: list[Element]) -> Element:
    card: Element = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _title(title: str) -> Element:
    return {
        "type": "TextBlock",
        "text": markdown(title)[:MAX_TEXT],
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
        "style": "heading",
    }


def _text_block(text: str) -> Element:
    return {"type": "TextBlock", "text": markdown(text)[:MAX_TEXT], "wrap": True}


def _subtle(text: str) -> Element:
    return {
        "type": "TextBlock",
        "text": markdown(text)[:MAX_TEXT],
        "wrap": True,
        "isSubtle": True,
        "size": "Small",
    }


def _table(columns: list[str], rows: list[list[Cell]]) -> Element:
    width = max(len(columns), *(len(r) for r in rows))
    header = {
        "type": "TableRow",
        "style": "emphasis",
        "cells": [_cell(Cell(c), bold=True) for c in (columns + [""] * width)[:width]],
    }
    body = [
        {"type": "TableRow", "cells": [_cell(c) for c in (r + [Cell("")] * width)[:width]]}
        for r in rows
    ]
    return {
        "type": "Table",
        "firstRowAsHeader": True,
        "showGridLines": True,
        "columns": [{"width": 1} for _ in range(width)],
        "rows": [header, *body],
    }


def _cell(cell: Cell, bold: bool = False) -> Element:
    text = cell.text.replace("\n", " ").strip() or "—"
    if cell.rag in RAG_DOT:
        text = f"{RAG_DOT[cell.rag]} {text}"
    block: Element = {"type": "TextBlock", "text": text, "wrap": True}
    if bold:
        block["weight"] = "Bolder"
    if cell.rag in RAG_COLOR:
        block["color"] = RAG_COLOR[cell.rag]
    element: Element = {"type": "TableCell", "items": [block]}
    if cell.rag in RAG_STYLE:
        element["style"] = RAG_STYLE[cell.rag]
    return element


def _action(action: Action) -> Element:
    if action.token is not None:
        data: dict[str, str] = {"token": action.token}
    else:
        data = {"command": action.command}
    element: Element = {
        "type": "Action.Submit",
        "title": action.label[:MAX_LABEL],
        "data": {DATA_KEY: data},
    }
    if action.style in ACTION_STYLE:
        element["style"] = ACTION_STYLE[action.style]
    return element
