"""Benchmarks: the bot, a naive baseline and the demo sandbox as real processes, under load."""
