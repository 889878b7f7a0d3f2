"""Training of world models: the one training loop plus the EMA target encoder, and loading.

The trainer takes a ``sample(rng) -> batch`` function, so it trains on any source of sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from world_models.checkpoint import CheckpointError, load_checkpoint
from world_models.config import LatentWorldModelConfig, ObsSpec
from world_models.latent import LatentWorldModel
from world_models.trainer import Batch, Trainer

CHECKPOINT = "checkpoint.pt"
KIND = "world-model"


def build_world_model(config: LatentWorldModelConfig, spec: ObsSpec, seed: int) -> LatentWorldModel:
    torch.manual_seed(seed)
    return config.build(spec)


class WorldModelTrainer(Trainer):
    """The one training loop (:class:`world_models.trainer.Trainer`) plus the EMA target encoder."""

    def __init__(
        self,
        model: LatentWorldModel,
        out: str | Path,
        sample: Callable[[np.random.Generator], Batch],
        seed: int = 0,
        data_info: dict[str, Any] | None = None,
        validation: list[Batch] | None = None,
        tensorboard: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            model,
            out,
            sample,
            kind=KIND,
            settings=model.config,
            identity={
                "name": "latent",
                "config": model.config.to_dict(),
                "spec": model.spec.to_dict(),
            },
            seed=seed,
            data_info=data_info,
            validation=validation,
            tensorboard=tensorboard,
            checkpoint_name=CHECKPOINT,
            desc="train world model",
            device=device,
        )
        self.config = model.config

    def run_identity(self) -> dict[str, Any]:
        return {
            "name": "latent",
            "config": self.config.to_dict(),
            "spec": self.model.spec.to_dict(),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"target": self.model.target_state_dict()}

    def load_extra_state(self, record: dict[str, Any]) -> None:
        self.model.load_target_state_dict(record["target"])

    def after_step(self) -> None:
        self.model.update_target()


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
