"""When things are sent: the scheduler (each team's digest and nudges, in its time zone) and the
delivery ledger that makes each message arrive exactly once."""
