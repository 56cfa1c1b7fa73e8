"""The Jinja2 templates, kept at the top of the source tree and installed as ``bot.templates``
(pyproject.toml maps the folder), so an installed vsm-bot finds them beside its own code."""
