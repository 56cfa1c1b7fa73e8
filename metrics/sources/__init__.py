"""Connectors: each pulls one tool's payloads into the raw store and normalises them.

``metrics.sources.sync.sync_sources`` runs them; every connector shares ``metrics.sources.http``.
"""
