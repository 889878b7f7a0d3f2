"""Training loops run from dataset directories: layered agents, reference baselines + DAgger, world models."""
