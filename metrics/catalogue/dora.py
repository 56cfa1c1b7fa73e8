"""Placeholder until the family is written."""

METRICS: list = []
