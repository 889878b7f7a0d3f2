"""Benchmarks behind docs/BENCHMARKS.md: env throughput, experts, learnability, world model, agents."""
