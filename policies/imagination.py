"""System 2 thinks with the world model: roll System 1 forward in imagination for each candidate
subtask and measure how much progress the world model believes each one makes.

For a candidate, System 1 (conditioned on the candidate's label) predicts a chunk from the real
observation; the world model imagines the latent states it leads to. With ``chunks >= 2`` the
imagined latent is decoded back to a camera frame and a proprioception vector, and System 1 is
asked again from that imagined observation (cameras the decoder does not produce keep their last
real frame). Progress is the highest probability, over the imagined steps, that the world model
gives to "a subtask was just completed" or "the task is solved".
"""

from __future__ import annotations

import numpy as np
import torch

from policies.fusion import as_tensor
from policies.vla import VLAPolicy
from world_models.latent import LatentWorldModel


class WorldModelCheck:
    """``progress(obs, candidate_tokens)`` -> ``(C,)`` imagined progress of each candidate."""

    def __init__(self, world_model: LatentWorldModel, policy: VLAPolicy, chunks: int) -> None:
        self.world_model = world_model.eval()
        self.policy = policy
        self.chunks = chunks
        self.execute = policy.config.execute

    @torch.no_grad()
    def progress(
        self, obs: dict, tokens: np.ndarray, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """``obs`` with batch dim 1 (every key the world model and policy read), ``tokens (C, L)``."""
        wm = self.world_model
        count = tokens.shape[0]
        batch = {k: as_tensor(v).expand(count, *np.shape(v)[1:]) for k, v in obs.items()}
        z = wm.encode(batch)
        scores = torch.zeros(count, device=wm.device)
        for c in range(self.chunks):
            chunk = self.policy.predict_chunk(batch, tokens, generator=generator)
            steps = chunk[:, : self.execute] if c < self.chunks - 1 else chunk
            zs = wm.imagine(z, steps)  # (C, n, Z)
            signal = torch.maximum(wm.subtask(zs), wm.success(zs)).amax(1)
            scores = torch.maximum(scores, signal)
            z = zs[:, -1]
            if c < self.chunks - 1:
                batch = dict(batch)
                if wm.decoder is not None:
                    batch[wm.spec.image_keys[0]] = wm.decode(z)
                if wm.state_head is not None:
                    state = wm.state(z)
                    start = 0
                    for key in wm.input_vector_keys:
                        dim = dict(zip(wm.spec.vector_keys, wm.spec.vector_dims))[key]
                        batch[key] = state[:, start : start + dim]
                        start += dim
        return scores.cpu().numpy()
