"""Render a ``Reply`` as Slack Block Kit, and a ``Form`` as a modal, within Slack's limits.

Slack has no tables, so rows become compact mrkdwn lines with RAG emoji, packed into sections of
at most 3,000 characters; a message carries at most 50 blocks, so long lists end in
"…and N more". Every message also gets a plain ``text`` fallback for notifications.

>>> from kpibot.commands.base import Cell, Reply
>>> reply = Reply("Status", "*2 red*", columns=["KPI", "Value"], rows=[[Cell("C7", "red"), Cell("42%")]])
>>> [b["type"] for b in reply_to_blocks(reply)]
['header', 'section', 'context', 'section']
>>> reply_to_blocks(reply)[3]["text"]["text"]
'🔴 *C7* · 42%'
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kpibot.core.protocol import Action, Cell, Form, Reply
from kpibot.store.shared import SharedValues

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_BUTTON_LABEL = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTONS_PER_BLOCK = 25
MAX_MODAL_TITLE = 24
MAX_FALLBACK_CHARS = 3000
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75

RUN_ACTION = "kpi_run"
CONFIRM_ACTION = "kpi_confirm"
CANCEL_ACTION = "kpi_cancel"
FORM_CALLBACK = "kpi_form"
FORM_ACTION = "value"
CANCEL_COMMAND = "cancel"

RAG_EMOJI = {"red": "🔴", "amber": "🟠", "green": "🟢", "grey": "⚪"}
_REF_PREFIX = "kpibot-ref:"


class ButtonValues:
    """Keeps button values longer than Slack's 2,000 characters; the button carries a reference.

    Confirmation tokens embed the user's note and reason, so a long note can outgrow a button.
    Values live for a day (a token's own lifetime). Given ``shared`` (``kpibot serve`` always
    gives the store's), they live in the database, so a click that lands on any replica finds
    them; without it, in this process only (tests and one-off tools).

    >>> values = ButtonValues()
    >>> values.pack("short") == "short"
    True
    >>> ref = values.pack("x" * 3000)
    >>> len(ref) < 100 and values.unpack(ref) == "x" * 3000
    True
    """

    def __init__(
        self,
        ttl_s: float = 24 * 3600,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedValues | None = None,
    ) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._shared = shared
        self._values: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def pack(self, value: str) -> str:
        if len(value) <= MAX_BUTTON_VALUE and not value.startswith(_REF_PREFIX):
            return value
        ref = _REF_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:32]
        if self._shared is not None:
            self._shared.put(f"button:{ref}", value, timedelta(seconds=self._ttl_s))
            return ref
        with self._lock:
            self._values[ref] = (self._clock() + self._ttl_s, value)
            self._values.move_to_end(ref)
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)
        return ref

    def unpack(self, value: str) -> str | None:
        """The original value, or None when a reference has expired or is unknown."""
        if not value.startswith(_REF_PREFIX):
            return value
        if self._shared is not None:
            return self._shared.get(f"button:{value}")
        with self._lock:
            expires, original = self._values.get(value, (0.0, ""))
        return original if expires > self._clock() else None


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn reserves; *bold* and `code` pass through."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text or " ", limit), "emoji": True}


def fallback_text(reply: Reply) -> str:
    """The notification and screen-reader text Slack shows when blocks cannot be."""
    text = escape(reply.title + (f"\n{reply.text}" if reply.text else ""))
    return _cut(text, MAX_FALLBACK_CHARS)


def reply_to_blocks(
    reply: Reply, values: ButtonValues | None = None, max_blocks: int = MAX_MESSAGE_BLOCKS
) -> list[Block]:
    """The reply as Block Kit blocks: title, text, rows, footer and buttons, within limits."""
    values = values or _DEFAULT_VALUES
    head = [_title_block(reply.title)]
    text_chunks = _pack(escape(reply.text).splitlines()) if reply.text.strip() else []
    row_lines = [row_line(row) for row in reply.rows]
    columns = (
        [_context(" · ".join(f"*{escape(c)}*" for c in reply.columns))]
        if reply.columns and row_lines
        else []
    )
    footer = [_context(escape(reply.footer))] if reply.footer else []
    actions = action_blocks(reply.actions, values)
    budget = max_blocks - len(head) - len(columns) - len(footer) - len(actions)
    text_budget = max(1, budget - (1 if row_lines else 0))
    if len(text_chunks) > text_budget:
        text_chunks = text_chunks[:text_budget]
        text_chunks[-1] = _cut(text_chunks[-1], MAX_SECTION_CHARS - 1) + "…"
    row_chunks = _pack_with_more(row_lines, budget - len(text_chunks)) if row_lines else []
    text_blocks = [_section(chunk) for chunk in text_chunks]
    row_blocks = [_section(chunk) for chunk in row_chunks]
    return head + text_blocks + columns + row_blocks + footer + actions


def row_line(row: list[Cell]) -> str:
    """One table row as a compact mrkdwn line: the first cell bold, RAG cells with their emoji."""
    parts = []
    for i, cell in enumerate(row):
        text = escape(cell.text.replace("\n", " ").strip()) or "—"
        if i == 0:
            text = f"*{text}*"
        if cell.rag in RAG_EMOJI:
            text = f"{RAG_EMOJI[cell.rag]} {text}"
        parts.append(text)
    return _cut(" · ".join(parts), MAX_SECTION_CHARS)


def action_blocks(actions: list[Action], values: ButtonValues) -> list[Block]:
    """Buttons: ``kpi_run`` carries the command, ``kpi_confirm`` the (packed) token."""
    buttons = []
    for i, action in enumerate(actions[:MAX_BUTTONS_PER_BLOCK]):
        if action.token is not None:
            action_id, value = CONFIRM_ACTION, values.pack(action.token)
        elif action.command.strip().lower() == CANCEL_COMMAND:
            action_id, value = CANCEL_ACTION, CANCEL_COMMAND
        else:
            action_id, value = RUN_ACTION, values.pack(action.command)
        button: Block = {
            "type": "button",
            "action_id": f"{action_id}:{i}",
            "text": plain(action.label, MAX_BUTTON_LABEL),
            "value": value,
        }
        if action.style in ("primary", "danger"):
            button["style"] = action.style
        buttons.append(button)
    return [{"type": "actions", "block_id": "kpi_actions", "elements": buttons}] if buttons else []


def home_view(
    reply: Reply, values: ButtonValues | None = None, private_metadata: str = ""
) -> Block:
    """The App Home tab showing ``reply``; ``private_metadata`` travels back with its clicks."""
    return {
        "type": "home",
        "private_metadata": private_metadata,
        "blocks": reply_to_blocks(reply, values, max_blocks=MAX_VIEW_BLOCKS),
    }


def form_view(form: Form, channel: str | None) -> Block:
    """A modal with one input per form field; the channel the form came from is kept in metadata."""
    blocks = []
    for f in form.fields:
        element: Block
        if f.options:
            options = [_option(o) for o in f.options[:MAX_OPTIONS]]
            element = {
                "type": "static_select",
                "action_id": FORM_ACTION,
                "options": options,
                "placeholder": plain(f.placeholder or f.label, 150),
            }
            if f.value in f.options[:MAX_OPTIONS]:
                element["initial_option"] = _option(f.value)
        else:
            element = {
                "type": "plain_text_input",
                "action_id": FORM_ACTION,
                "multiline": f.multiline,
            }
            if f.placeholder:
                element["placeholder"] = plain(f.placeholder, 150)
            if f.value:
                element["initial_value"] = f.value
        blocks.append(
            {
                "type": "input",
                "block_id": f.name,
                "label": plain(f.label, 2000),
                "optional": f.optional,
                "element": element,
            }
        )
    metadata = json.dumps(
        {"channel": channel, "verb": form.verb, "fields": [f.name for f in form.fields]}
    )
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": plain(form.title, MAX_MODAL_TITLE),
        "submit": plain(form.submit_label, MAX_MODAL_TITLE),
        "close": plain("Cancel", MAX_MODAL_TITLE),
        "private_metadata": metadata,
        "blocks": blocks[:MAX_VIEW_BLOCKS],
    }


def form_submission(view: Block) -> tuple[str, str | None]:
    """The command text a submitted form stands for, and the channel it came from.

    Fields are written in form order; a ``reason`` field is written as ``reason: …``, which is how
    commands mark the amendment reason in typed text.
    """
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        metadata = {}
    state = view.get("state", {}).get("values", {})
    names = metadata.get("fields") or list(state)
    words = [str(metadata.get("verb") or "help")]
    for name in names:
        value = _input_value(state.get(name, {}).get(FORM_ACTION, {}))
        if value:
            words.append(f"reason: {value}" if name == "reason" else value)
    channel = metadata.get("channel")
    return " ".join(words), channel if isinstance(channel, str) and channel else None


def _input_value(element: Block) -> str:
    selected = element.get("selected_option") or {}
    value = selected.get("value") if selected else element.get("value")
    return " ".join(str(value or "").split())


def _option(text: str) -> Block:
    return {"text": plain(text, MAX_OPTION_TEXT), "value": text[:150]}


def _title_block(title: str) -> Block:
    # Header blocks are plain text: a title with markdown in it reads better as a bold section.
    if any(ch in title for ch in "*`_~"):
        return _section(_cut(f"*{escape(title)}*", MAX_SECTION_CHARS))
    return {"type": "header", "text": plain(title, MAX_HEADER_CHARS)}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION_CHARS)}}


def _context(text: str) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cut(text, MAX_SECTION_CHARS)}],
    }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pack(lines: list[str], limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Join lines into as few chunks of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = _cut(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _pack_with_more(lines: list[str], budget: int) -> list[str]:
    """Pack lines into at most ``budget`` chunks, ending with '…and N more' when some do not fit."""
    budget = max(1, budget)
    chunks = _pack(lines)
    if len(chunks) <= budget:
        return chunks

    def packed(shown: int) -> list[str]:
        return _pack([*lines[:shown], f"…and {len(lines) - shown} more"])

    # The chunk count grows with the number of lines shown, so bisect for the most that fit.
    low, high = 0, len(lines) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if len(packed(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    return packed(low)


_DEFAULT_VALUES = ButtonValues()
