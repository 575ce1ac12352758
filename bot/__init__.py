"""Customer context for Slack, live from Adobe Experience Platform."""

__version__ = "0.1.0"
