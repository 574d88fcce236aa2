"""Chat platform adapters: thin translators between platform events and ``Request``/``Reply``.

``slack`` holds the Bolt listeners, ``blocks`` renders a ``Reply`` as Slack Block Kit, ``console``
is the terminal platform. Adapters hold no business rules; every decision is the bot's
(``kpibot.commands.bot.Bot.handle``).

>>> from kpibot.chat.blocks import reply_to_blocks  # doctest: +SKIP
"""
