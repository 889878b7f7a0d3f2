"""Dependency-free pieces shared by every package: the registry and atomic file writes.

It imports nothing but the standard library, so ``envs`` (no torch) and ``world_models``
(no envs) can both use it.
"""
