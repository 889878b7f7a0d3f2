"""The one evaluation harness (seeded episodes, Wilson intervals, latency, videos, vector envs)."""
