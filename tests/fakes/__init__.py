"""Loopback servers that speak the tools' wire formats, for connector tests."""
