"""The stable-baselines3 callbacks of ``train rl``: a progress bar, a periodic call (evaluation,
checkpoint, NaN guard) and a delayed actor. Built inside :func:`callbacks` so that importing
this module does not import SB3."""

from __future__ import annotations

from tqdm import tqdm


def callbacks():
    """SB3 callbacks, built here so the module imports without SB3 at import time."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def __init__(self, total: int, enabled: bool) -> None:
            super().__init__()
            self.bar = tqdm(total=total, desc="train rl", disable=not enabled, mininterval=1.0)

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.bar.n)  # tqdm rate-limits the redraws
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    class Periodic(BaseCallback):
        """Every ``every`` env steps, call ``fn(model)`` (evaluation, checkpoint, NaN guard)."""

        def __init__(self, every: int, fn) -> None:
            super().__init__()
            self.every, self.fn = every, fn
            self.last = None

        def _on_step(self) -> bool:
            if self.last is None:
                self.last = self.num_timesteps // self.every
            if self.num_timesteps // self.every > self.last:
                self.last = self.num_timesteps // self.every
                self.fn(self.model)
            return True

    class ActorDelay(BaseCallback):
        """Freeze the actor until env step ``until``: its loss still backpropagates (into the
        critic's gradients, which the critic's optimiser zeroes first), its step changes
        nothing."""

        def __init__(self, until: int) -> None:
            super().__init__()
            self.until = until

        def _freeze(self, frozen: bool) -> None:
            self.frozen = frozen
            for p in self.model.actor.parameters():
                p.requires_grad_(not frozen)

        def _on_training_start(self) -> None:
            self._freeze(self.num_timesteps < self.until)

        def _on_step(self) -> bool:
            if self.frozen and self.num_timesteps >= self.until:
                self._freeze(False)
            return True

    return Progress, Periodic, ActorDelay
