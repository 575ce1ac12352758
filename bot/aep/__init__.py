"""Everything that speaks to Adobe Experience Platform; nothing here knows Slack."""
