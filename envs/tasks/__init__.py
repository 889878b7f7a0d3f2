"""One task per module; importing this package registers them all (explicitly, in this order)."""

from envs.tasks import chain, pick_place, push, reach, sort, stack

__all__ = ["chain", "pick_place", "push", "reach", "sort", "stack"]
