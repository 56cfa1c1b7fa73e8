"""How things look in Slack and the terminal: Block Kit replies, digests, nudges, App Home, modals,
charts and number formatting, rendered from ``templates/`` (``templates.py`` is the loader)."""
