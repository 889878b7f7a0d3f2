"""The stable-baselines3 callbacks of ``train rl``: a progress bar and a periodic call
(evaluation, checkpoint, NaN guard). Built inside :func:`callbacks` so that importing
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

    return Progress, Periodic
