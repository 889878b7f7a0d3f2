"""Videos with overlays, and real | imagined rollouts of a world model."""
