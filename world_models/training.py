"""Training loop for world models: seeded, resumable, with atomic checkpoints and TensorBoard.

The trainer takes a ``sample(rng) -> batch`` function, so it trains on any source of sequences.
Batch ``k`` is drawn with ``np.random.default_rng([seed, k])``: a run resumed from a checkpoint
at step ``k`` sees exactly the batches an uninterrupted run would, and (with deterministic
kernels, one thread) follows the same loss curve bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world_models.checkpoint import (
    CheckpointError,
    config_differences,
    load_checkpoint,
    save_checkpoint,
)
from world_models.config import LatentWorldModelConfig, ObsSpec
from world_models.latent import LatentWorldModel

CHECKPOINT = "checkpoint.pt"
KIND = "world-model"

Batch = dict[str, Any]


def build_world_model(config: LatentWorldModelConfig, spec: ObsSpec, seed: int) -> LatentWorldModel:
    torch.manual_seed(seed)
    return config.build(spec)


class WorldModelTrainer:
    """Owns the optimizer; the model owns its parameters."""

    def __init__(
        self,
        model: LatentWorldModel,
        out: str | Path,
        sample: Callable[[np.random.Generator], Batch],
        seed: int = 0,
        data_info: dict[str, Any] | None = None,
        validation: list[Batch] | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.model = model
        self.config = model.config
        self.out = Path(out)
        self.sample = sample
        self.seed = seed
        self.data_info = data_info or {}
        self.validation = validation or []
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.tensorboard = tensorboard
        self._writer = None
        self.seconds = 0.0
        """Wall time of the last ``fit`` call."""

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    def save(self) -> Path:
        return save_checkpoint(
            self.checkpoint_path,
            KIND,
            {
                "name": "latent",
                "config": self.config.to_dict(),
                "spec": self.model.spec.to_dict(),
                "data": self.data_info,
                "seed": self.seed,
                "step": self.step,
                "model": self.model.state_dict(),
                "target": self.model.target_state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": self.history,
            },
        )

    def resume(self) -> bool:
        """Load ``out/checkpoint.pt`` if it exists; refuse one from another config, spec, data or seed."""
        if not self.checkpoint_path.exists():
            return False
        record = load_checkpoint(self.checkpoint_path, KIND)
        problems = config_differences(record["config"], self.config.to_dict())
        problems += ObsSpec.from_dict(record["spec"]).differences(self.model.spec)
        if record.get("seed") != self.seed:
            problems.append(f"seed: {record.get('seed')!r} vs {self.seed!r}")
        for key in ("root", "episodes_train"):
            if key in self.data_info and record["data"].get(key) != self.data_info.get(key):
                problems.append(
                    f"data {key}: {record['data'].get(key)!r} vs {self.data_info.get(key)!r}"
                )
        if problems:
            raise CheckpointError(
                f"{self.checkpoint_path}: cannot resume, the run differs (saved vs now): "
                + "; ".join(problems)
                + ". Use another output directory."
            )
        self.model.load_state_dict(record["model"])
        self.model.load_target_state_dict(record["target"])
        self.optimizer.load_state_dict(record["optimizer"])
        self.step = int(record["step"])
        self.history = list(record["history"])
        return True

    # ------------------------------------------------------------------ loop

    def _log(self, scalars: dict[str, float], prefix: str) -> None:
        if not self.tensorboard:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "tensorboard"))
        for name, value in scalars.items():
            self._writer.add_scalar(f"{prefix}/{name}", value, self.step)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.validation:
            return {}
        self.model.eval()
        totals: dict[str, float] = {}
        for i, batch in enumerate(self.validation):
            _, metrics = self.model.loss(batch, generator=torch.Generator().manual_seed(i))
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v / len(self.validation)
        self.model.train()
        return totals

    def train_step(self) -> dict[str, float]:
        rng = np.random.default_rng([self.seed, self.step])
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        batch = self.sample(rng)
        loss, metrics = self.model.loss(batch, generator=generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        )
        self.optimizer.step()
        self.model.update_target()
        self.step += 1
        return metrics

    def fit(
        self, steps: int | None = None, progress: bool = True, stop_after: int | None = None
    ) -> list[dict]:
        """Train until ``steps`` updates (default: the config's), checkpointing as it goes.

        ``stop_after`` ends the call after that many updates of this call, as a kill would
        (used by tests of resume).
        """
        total = steps if steps is not None else self.config.steps
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.train()
        start, done_here = time.perf_counter(), 0
        bar = tqdm(
            total=total,
            initial=self.step,
            desc="train world model",
            unit="step",
            disable=not progress,
        )
        while self.step < total:
            metrics = self.train_step()
            done_here += 1
            record = {"step": self.step, **metrics}
            if self.step % self.config.eval_every == 0 or self.step == total:
                record |= {f"val_{k}": v for k, v in self.validate().items()}
                self._log(
                    {k[4:]: v for k, v in record.items() if k.startswith("val_")}, "validation"
                )
            self.history.append(record)
            if self.step % 10 == 0 or self.step == total:
                self._log(metrics, "train")
                bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            if self.step % self.config.checkpoint_every == 0 or self.step == total:
                self.save()
            bar.update(1)
            if stop_after is not None and done_here >= stop_after:
                break
        bar.close()
        if self._writer is not None:
            self._writer.flush()
        self.seconds = time.perf_counter() - start
        return self.history


def load_world_model(
    path: str | Path, spec: ObsSpec | None = None
) -> tuple[LatentWorldModel, dict[str, Any]]:
    """Load a trained world model from a run directory or checkpoint file; check the data layout."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    record = load_checkpoint(file, KIND)
    try:
        config = LatentWorldModelConfig.from_dict(record["config"])
        saved_spec = ObsSpec.from_dict(record["spec"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{file}: checkpoint config is not readable by this code ({exc})"
        ) from None
    if spec is not None:
        diffs = saved_spec.differences(spec)
        if diffs:
            raise CheckpointError(
                f"{file}: the world model was trained on other observations: " + "; ".join(diffs)
            )
    model = config.build(saved_spec)
    try:
        model.load_state_dict(record["model"])
        model.load_target_state_dict(record["target"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{file}: weights do not fit the saved config ({str(exc).splitlines()[0]})"
        ) from None
    model.eval()
    return model, record
