"""Free text people type (notes, reasons, incident reports, action plans): how long it may be and
which characters it may hold, checked before anything is stored, posted or logged.

Every free-text field has a :class:`TextField` with a limit sized to what the field is for, well
inside what a Slack section (3,000 characters) or a Teams card shows. Control characters are
refused everywhere: NUL cannot be stored in PostgreSQL at all, and the others (a stray escape or
form feed pasted from a PDF) are invisible to the person reading them later. Tab and line breaks
are ordinary text and pass.

>>> text_problem("Wrong leaflet given", INCIDENT_DESCRIPTION) is None
True
>>> text_problem("x" * 1010, INCIDENT_DESCRIPTION)
'An incident description is limited to 1,000 characters; yours is 10 over.'
>>> text_problem("bad\\x00byte", NOTE)
'A note contains a control character (U+0000), which kpibot cannot store; delete it (it is often pasted in invisibly) and send it again.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# User-facing texts, kept together (the engine cannot import kpibot.core.texts).
TOO_LONG = "{what} is limited to {limit:,} characters; yours is {over:,} over."
CONTROL = (
    "{what} contains a control character ({code}), which kpibot cannot store; delete it (it is "
    "often pasted in invisibly) and send it again."
)

# C0 controls but tab, line feed and carriage return; DEL and the C1 controls; lone surrogates
# (which arrive from JSON escapes such as "\ud800" and cannot be encoded for the database); and
# the bidirectional embedding, override and isolate marks, which make text display other than
# it reads (a note that shows "paid" but stores "diap").
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)


@dataclass(frozen=True)
class TextField:
    """One kind of free text: what it is called in a sentence, and its length limit.

    >>> NOTE.limit
    500
    """

    what: str
    limit: int


#: A whole command as typed (``/kpi …``), checked before it is split into words.
COMMAND = TextField("A command", 4_000)
#: A figure's note, an amendment's reason, an import's reason.
NOTE = TextField("A note", 500)
REASON = TextField("A reason", 500)
INCIDENT_DESCRIPTION = TextField("An incident description", 1_000)
INCIDENT_REPORT = TextField("An incident report", 2_000)
INCIDENT_ACTION_PLAN = TextField("An incident's action plan", 2_000)
PLAN_AREAS = TextField("The description of the underperforming areas", 1_000)
PLAN_ACTION = TextField("An action", 500)
PLAN_OWNER = TextField("An action's owner", 100)
PLAN_NOTE = TextField("A note on the action plan", 1_000)
#: The reason a commissioner gives to query, correct or reopen a return.
QUERY_REASON = TextField("A review reason", 1_000)
NARRATIVE_SECTION = TextField("A narrative section", 2_000)
EXCEPTION_REPORT = TextField("An exception report", 2_000)
EXPENDITURE_REASONS = TextField("The explanation of the variance", 2_000)
EXPENDITURE_MEASURES = TextField("The account of corrective measures", 2_000)
CORRECTION = TextField("A correction's reason", 500)

#: Every field, for the README's limits table and its test.
FIELDS = (
    COMMAND,
    NOTE,
    REASON,
    INCIDENT_DESCRIPTION,
    INCIDENT_REPORT,
    INCIDENT_ACTION_PLAN,
    PLAN_AREAS,
    PLAN_ACTION,
    PLAN_OWNER,
    PLAN_NOTE,
    QUERY_REASON,
    NARRATIVE_SECTION,
    EXCEPTION_REPORT,
    EXPENDITURE_REASONS,
    EXPENDITURE_MEASURES,
    CORRECTION,
)


def control_character(text: str) -> str | None:
    """The first control character in ``text`` as ``U+0000``, or None when there is none.

    >>> control_character("tab\\tand\\nnewline are fine"), control_character("esc\\x1b[31m")
    (None, 'U+001B')
    """
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def text_problem(text: str | None, field: TextField) -> str | None:
    """Why ``text`` cannot be stored as ``field`` (one sentence), or None when it can.

    The sentence never quotes the text, so it is safe to log and to audit.
    """
    if not text:
        return None
    code = control_character(text)
    if code is not None:
        return CONTROL.format(what=field.what, code=code)
    if len(text) > field.limit:
        return TOO_LONG.format(what=field.what, limit=field.limit, over=len(text) - field.limit)
    return None


def first_problem(*checks: tuple[str | None, TextField]) -> str | None:
    """The first problem among several ``(text, field)`` pairs, or None when all can be stored.

    >>> first_problem(("fine", NOTE), ("x" * 501, REASON))
    'A reason is limited to 500 characters; yours is 1 over.'
    """
    for text, field in checks:
        problem = text_problem(text, field)
        if problem is not None:
            return problem
    return None
