"""vsm-bot's delivery side: the command line, rendering, and (later) the Slack app."""
