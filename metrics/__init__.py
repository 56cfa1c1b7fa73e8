"""vsm-bot's data core: sources -> store -> workflow mapping -> metric catalogue.

Nothing in this package imports ``bot``: the Slack app and the command line sit on top of it.
"""
