"""Thin Slack handlers, one module per surface, each with register(app, services)."""
