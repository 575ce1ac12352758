"""Jinja2 templates that render Block Kit JSON; shipped inside the package as bot.blocks."""
