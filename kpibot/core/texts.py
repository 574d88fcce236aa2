"""User-facing texts, kept together so wording stays consistent and reviewable (as bolt's logger/messages.py).

>>> UNKNOWN_CONTRACT.format(contract="childrens-trst", hint=" Did you mean 'childrens-trust'?")
"There is no contract 'childrens-trst'. Did you mean 'childrens-trust'?"
"""

from __future__ import annotations

INTERNAL_ERROR = (
    "Sorry, something went wrong on our side ({error}); nothing was changed. "
    "Try again, and if it keeps happening ask your kpibot administrator to check the logs."
)
UNKNOWN_CONTRACT = "There is no contract '{contract}'.{hint}"
DATABASE_UNAVAILABLE = (
    "kpibot can't reach its database right now; nothing was changed, try again in a minute."
)
BAD_SETTING = "The setting {name} cannot be used: {problem}."
IMPORT_REJECTED = "The return was rejected: {n} problem(s) above. Nothing was stored; fix them and send the whole file again."
IMPORT_STORED = "Stored {n} figure(s) for {contract} from {file}{amended}{late}."
IMPORT_DUPLICATE = "This return was already received ({when}); nothing new was stored."
AMENDMENT_NEEDS_REASON = (
    "{what} already has a figure, so this is an amendment and needs a reason: "
    "add one, e.g. `reason: data recoded after audit`."
)
NOT_ALLOWED = (
    "Sorry, {action} on {contract} is not open to you ({role}). {grantor} can give you access."
)
COMMAND_TOO_LONG = (
    "That command is {length:,} characters long; kpibot reads commands of up to {limit:,} "
    "characters, so shorten it (a long return goes in a CSV or XLSX file)."
)
COMMAND_CONTROL = (
    "That command contains a control character ({code}), which kpibot cannot store; delete it "
    "(it is often pasted in invisibly) and send the command again."
)
INIT_DONE = (
    "Next: edit {folder}/access.yaml (who may do what), copy {folder}/.env.example to .env here "
    "and fill it in, then `kpibot db upgrade`, `kpibot contracts load {folder}/contracts` and "
    "`kpibot serve`."
)
