"""The latent world model: encode observations to z, step z with actions, read heads off z.

Batches are dicts of arrays (any Gymnasium env's data fits):

    obs/<key>      (B, T + 1, H, W, 3) uint8 images or (B, T + 1, D) float vectors
    action         (B, T, A)
    reward         (B, T)        optional: reward of the transition into step t + 1
    success        (B, T)        optional: success after step t
    subtask_done   (B, T)        optional: a subtask was completed by step t

Anti-collapse: the prediction target comes from an EMA copy of the encoder (stop-gradient), the
latent must also predict the vector observations it is given and the reward / success / subtask
signals (grounding), and a hinge keeps every latent dimension's spread over the batch above a floor.
The image decoder trains on stop-gradient latents, so it never shapes z.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from world_models.config import LatentWorldModelConfig, ObsSpec
from world_models.networks import ImageDecoder, ImageEncoder, SlotDynamics, mlp
from world_models.registry import WORLD_MODEL_BUILDERS

STD_FLOOR = 0.5
"""Each latent dimension's standard deviation over a batch is pushed above this."""


def to_tensor(
    x, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """An array or tensor as a tensor of ``dtype`` on ``device`` (no copy when it already is)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=dtype)


@WORLD_MODEL_BUILDERS.register(LatentWorldModelConfig)
class LatentWorldModel(nn.Module):
    """Small verbs: ``encode``, ``next``, ``imagine``, ``reward``, ``success``, ``subtask``, ``state``,
    ``decode``, ``loss``. Tensors are batch-first; shapes are in the docstrings."""

    def __init__(self, config: LatentWorldModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        c = config
        self.image_keys = spec.image_keys if c.use_images else ()
        if c.use_images and not spec.image_keys:
            raise ValueError(
                "the pixel world model needs image observations; the data has none "
                "(use the `state` preset, use_images=False)"
            )
        hidden = set(c.aux_keys) | (set(c.hidden_keys) if self.image_keys else set())
        if c.object_input_key:
            if c.object_input_key not in spec.vector_keys:
                raise ValueError(
                    f"object_input_key {c.object_input_key!r} is not a vector key of the data; "
                    f"it has {list(spec.vector_keys)}"
                )
            hidden.add(c.object_input_key)
        self.input_vector_keys = tuple(k for k in spec.vector_keys if k not in hidden)
        self.aux_keys = tuple(k for k in spec.vector_keys if k in c.aux_keys)
        dims = dict(zip(spec.vector_keys, spec.vector_dims))
        self.input_vector_dim = sum(dims[k] for k in self.input_vector_keys)
        self.aux_dim = sum(dims[k] for k in self.aux_keys)
        slots = self.aux_dim // c.object_slot_size if c.object_slot_size else 0
        if c.object_input_key:  # the slots come from that key, not from keypoint maps
            given = dims[c.object_input_key]
            if given != self.aux_dim:
                raise ValueError(
                    f"object_input_key {c.object_input_key!r} has {given} values per step, the "
                    f"auxiliary keys ({', '.join(self.aux_keys) or 'none'}) {self.aux_dim}: it must "
                    "say the same things in the same layout"
                )
            slots = 0
        self.encoders = nn.ModuleDict(
            {k: ImageEncoder(spec.image_size, c.conv_channels, slots) for k in self.image_keys}
        )
        feat = sum(e.out_dim for e in self.encoders.values())
        self.vector_encoder = (
            mlp(self.input_vector_dim, c.hidden_dim, c.hidden_dim, layers=1)
            if self.input_vector_dim
            else None
        )
        feat += c.hidden_dim if self.vector_encoder is not None else 0
        self.fuse = mlp(feat, c.hidden_dim, c.latent_dim, layers=1, norm_out=True)
        self.slots = self._object_slots(c)
        size = self.latent_size
        self.dynamics = mlp(size + spec.action_dim, c.hidden_dim, c.latent_dim, layers=2)
        self.latent_norm = nn.LayerNorm(c.latent_dim, elementwise_affine=False)
        self.reward_head = mlp(size, c.hidden_dim, 1, layers=1)
        self.success_head = mlp(size, c.hidden_dim, 1, layers=1)
        self.subtask_head = mlp(size, c.hidden_dim, 1, layers=1)
        self.state_head = (
            mlp(size, c.hidden_dim, self.input_vector_dim, layers=1)
            if self.input_vector_dim
            else None
        )
        self.aux_head = (
            mlp(size, c.hidden_dim, self.aux_dim, layers=1)
            if self.aux_dim and self.slots is None
            else None
        )
        self.decoder = (
            ImageDecoder(size, spec.image_size, c.decoder_channels)
            if c.decoder and spec.image_keys
            else None
        )
        # normalisation of vectors and actions, set from data statistics before training
        self.register_buffer("vector_mean", torch.zeros(spec.vector_dim))
        self.register_buffer("vector_std", torch.ones(spec.vector_dim))
        self.register_buffer("action_scale", torch.ones(spec.action_dim))
        offsets, start = {}, 0
        for key, dim in zip(spec.vector_keys, spec.vector_dims):
            offsets[key] = range(start, start + dim)
            start += dim
        index = [i for key in self.input_vector_keys for i in offsets[key]]
        self.register_buffer("input_index", torch.tensor(index, dtype=torch.long), persistent=False)
        aux_index = [i for key in self.aux_keys for i in offsets[key]]
        self.register_buffer(
            "aux_index", torch.tensor(aux_index, dtype=torch.long), persistent=False
        )
        self._target: list[
            nn.Module
        ] = []  # held in a list so it is not a submodule of the online model

    def _object_slots(self, c: LatentWorldModelConfig) -> nn.ModuleDict | None:
        """The explicit object part of the latent (``object_slot_size > 0``): per camera one keypoint
        map per slot; a slot's keypoints in every camera (and a learned slot code) -> its values,
        by one network shared across slots, so it learns where a peak means an object is, not
        which layout it is looking at. Models without images read the slots off their vectors."""
        size = c.object_slot_size
        if not size or not self.aux_dim:
            return None
        if self.aux_dim % size:
            raise ValueError(
                f"object_slot_size {size} does not divide the auxiliary keys' {self.aux_dim} values "
                f"({', '.join(self.aux_keys)}); use a size that does, or 0"
            )
        count = self.aux_dim // size
        code = 8
        context = c.latent_dim + count * size + self.spec.action_dim
        parts: dict[str, nn.Module] = {}
        if c.slot_dynamics == "shared":
            parts["dynamics"] = SlotDynamics(context, size, code, c.hidden_dim // 2)
            self.dynamics_code = nn.Parameter(torch.randn(count, code) * 0.5)
        else:
            parts["dynamics"] = mlp(context, c.hidden_dim, count * size, layers=2)
            nn.init.zeros_(parts["dynamics"][-1].weight)  # nothing moves until the data says so
            nn.init.zeros_(parts["dynamics"][-1].bias)
        if c.object_input_key:  # the given values, corrected by one network shared across slots
            parts["readout"] = mlp(size + code, 64, size, layers=1)
            nn.init.zeros_(parts["readout"][-1].weight)
            nn.init.zeros_(parts["readout"][-1].bias)
            self.slot_code = nn.Parameter(torch.randn(count, code) * 0.5)
        elif self.image_keys:
            parts["readout"] = mlp(3 * len(self.image_keys) + code, 64, size, layers=1)
            self.slot_code = nn.Parameter(torch.randn(count, code) * 0.5)
        else:
            parts["readout"] = mlp(self.input_vector_dim, c.hidden_dim, count * size)
        self.slot_count, self.slot_size = count, size
        return nn.ModuleDict(parts)

    @property
    def latent_size(self) -> int:
        """Length of z: ``latent_dim`` free dimensions, then the object slots (when there are any)."""
        return self.config.latent_dim + (self.aux_dim if self.slots is not None else 0)

    # ------------------------------------------------------------------ normalisation and target

    def set_normalizer(self, vectors: np.ndarray, actions: np.ndarray) -> None:
        """Statistics from data: ``vectors (N, vector_dim)``, ``actions (N, A)``."""
        if self.spec.vector_dim:
            self.vector_mean.copy_(torch.as_tensor(vectors.mean(0), dtype=torch.float32))
            std = vectors.std(0)
            std = np.where(
                std < 1e-4, 1.0, std + 1e-3
            )  # constant entries (e.g. a pad's height) keep unit scale
            self.vector_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        self.action_scale.copy_(torch.as_tensor(np.abs(actions).max(0) + 1e-6, dtype=torch.float32))

    @property
    def target_encoder(self) -> "LatentWorldModel":
        """An EMA copy of this model whose ``encode`` gives prediction targets (no gradients)."""
        if not self._target:
            target = copy.deepcopy(self)
            target._target = []
            target.requires_grad_(False)
            self._target.append(target)
        return self._target[0]

    @torch.no_grad()
    def update_target(self) -> None:
        tau = self.config.target_ema
        target = self.target_encoder
        for p_t, p in zip(target.parameters(), self.parameters()):
            p_t.lerp_(p, tau)
        for b_t, b in zip(target.buffers(), self.buffers()):
            b_t.copy_(b)

    def target_state_dict(self) -> dict[str, torch.Tensor]:
        return self.target_encoder.state_dict()

    def load_target_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.target_encoder.load_state_dict(state)

    # ------------------------------------------------------------------ verbs

    def normalize_vectors(
        self, obs: dict, keys: tuple[str, ...] | None = None
    ) -> torch.Tensor | None:
        """Vector keys (default: the inputs), concatenated and normalised: ``(..., dim)``."""
        keys = self.input_vector_keys if keys is None else keys
        if not keys:
            return None
        x = torch.cat([to_tensor(obs[k], torch.float32, self.device) for k in keys], dim=-1)
        # the inputs, or what is in the auxiliary keys' layout (the aux keys, an object input key)
        idx = self.input_index if keys == self.input_vector_keys else self.aux_index
        return (x - self.vector_mean[idx]) / self.vector_std[idx]

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live; inputs are moved there."""
        return self.action_scale.device

    def encode(self, obs: dict, objects: bool = True) -> torch.Tensor:
        """Observations with leading dims ``(...,)`` (e.g. ``(B,)`` or ``(B, T)``) -> ``z (..., latent)``;
        ``objects=False`` leaves out the object slots (the prediction targets need only the rest)."""
        feats, seen = [], []
        lead = vec = None
        for key in self.image_keys:
            images = to_tensor(obs[key], device=self.device)
            lead = images.shape[:-3]
            flat = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2)
            features, found = self.encoders[key].features_and_objects(flat, objects)
            feats.append(features)
            if found is not None:
                seen.append(found)  # (N, K, 3)
        if self.vector_encoder is not None:
            vec = self.normalize_vectors(obs)
            lead = vec.shape[:-1]
            vec = vec.reshape(-1, vec.shape[-1])
            feats.append(self.vector_encoder(vec))
        z = self.fuse(torch.cat(feats, dim=-1))
        if self.slots is not None and objects:
            if self.config.object_input_key:
                given = self.normalize_vectors(obs, (self.config.object_input_key,))
                lead = given.shape[:-1]
                given = given.reshape(len(z), self.slot_count, self.slot_size)
                code = self.slot_code.expand(len(z), *self.slot_code.shape)
                slots = given + self.slots["readout"](torch.cat([given, code], dim=-1))
                slots = slots.flatten(1)
            elif seen:
                code = self.slot_code.expand(len(z), *self.slot_code.shape)
                slots = self.slots["readout"](torch.cat([*seen, code], dim=-1)).flatten(1)
            else:
                slots = self.slots["readout"](vec)
            z = torch.cat([z, slots], dim=-1)
        return z.reshape(*lead, -1)

    def next(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One latent step: ``z (N, latent)``, ``action (N, A)`` -> ``z' (N, latent)``."""
        a = to_tensor(action, torch.float32, self.device) / self.action_scale
        za = torch.cat([z, a], dim=-1)
        free = self.latent_norm(z[..., : self.config.latent_dim] + self.dynamics(za))
        if self.slots is None:
            return free
        slots = z[..., self.config.latent_dim :]
        if self.config.slot_dynamics == "shared":
            shape = (*slots.shape[:-1], self.slot_count, self.slot_size)
            step = self.slots["dynamics"](za, slots.reshape(shape), self.dynamics_code)
            slots = slots + step.flatten(-2)
        else:
            slots = slots + self.slots["dynamics"](za)
        return torch.cat([free, slots], dim=-1)

    def imagine(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Roll ``z (N, latent)`` through ``actions (N, H, A)`` -> ``(N, H, latent)``."""
        actions = to_tensor(actions, torch.float32, self.device)
        out = []
        for t in range(actions.shape[1]):
            z = self.next(z, actions[:, t])
            out.append(z)
        return torch.stack(out, dim=1)

    def reward(self, z: torch.Tensor) -> torch.Tensor:
        """Predicted reward of arriving in ``z``: ``(...,)``."""
        return self.reward_head(z).squeeze(-1)

    def success(self, z: torch.Tensor) -> torch.Tensor:
        """Probability that ``z`` is a success: ``(...,)``."""
        return torch.sigmoid(self.success_head(z).squeeze(-1))

    def subtask(self, z: torch.Tensor) -> torch.Tensor:
        """Probability that a subtask was just completed in ``z``: ``(...,)``."""
        return torch.sigmoid(self.subtask_head(z).squeeze(-1))

    def state(self, z: torch.Tensor) -> torch.Tensor:
        """The input vector keys read off ``z``, in data units: ``(..., input_vector_dim)``.

        Only what the model sees is predicted: a pixel model is not taught privileged object
        state, which it could not identify from images (which cube is "the red one" of the task).
        """
        if self.state_head is None:
            raise ValueError("this world model has no vector observations to predict")
        idx = self.input_index
        return self.state_head(z) * self.vector_std[idx] + self.vector_mean[idx]

    def aux(self, z: torch.Tensor) -> torch.Tensor:
        """The auxiliary (privileged) vector keys read off ``z``, in data units: ``(..., aux_dim)``."""
        return (
            self.aux_normalized(z) * self.vector_std[self.aux_index]
            + self.vector_mean[self.aux_index]
        )

    def aux_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`aux` in units of each value's spread: the slots of z, or the auxiliary head."""
        if self.slots is not None:
            return z[..., self.config.latent_dim :]
        if self.aux_head is None:
            raise ValueError("this world model predicts no auxiliary keys")
        return self.aux_head(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames of the first image key: ``z (..., latent)`` -> ``(..., H, W, 3) uint8``."""
        if self.decoder is None:
            raise ValueError("this world model has no image decoder (decoder=False or no images)")
        lead = z.shape[:-1]
        images = self.decoder(z.reshape(-1, z.shape[-1])).permute(0, 2, 3, 1)
        return (
            (images * 255).round().clamp(0, 255).to(torch.uint8).reshape(*lead, *images.shape[1:])
        )

    # ------------------------------------------------------------------ training loss

    def loss(
        self, batch: dict, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of a batch (see the module docstring) and its parts as floats."""
        c = self.config
        obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
        actions = to_tensor(batch["action"], torch.float32)
        B, T = actions.shape[:2]
        z_obs = self.encode(obs)  # (B, T+1, Z)
        with torch.no_grad():
            z_target = self.target_encoder.encode(
                {k: v[:, 1:] for k, v in obs.items()}, objects=False
            )  # (B, T, latent_dim)
        z_pred = self.imagine(z_obs[:, 0], actions)  # (B, T, Z)
        weights = c.rho ** torch.arange(T, dtype=torch.float32, device=z_obs.device)
        weights = weights / weights.sum()

        def weighted(per_step: torch.Tensor) -> torch.Tensor:  # (B, T) -> ()
            return (per_step.mean(0) * weights).sum()

        parts: dict[str, torch.Tensor] = {}
        free = c.latent_dim  # the object slots are taught by the aux loss below, not by the target
        parts["consistency"] = weighted(((z_pred[..., :free] - z_target) ** 2).mean(-1))
        if "reward" in batch:
            parts["reward"] = weighted(
                (self.reward(z_pred) - to_tensor(batch["reward"], torch.float32)) ** 2
            )
        if "success" in batch:
            logits = self.success_head(z_pred).squeeze(-1)
            parts["success"] = weighted(
                F.binary_cross_entropy_with_logits(
                    logits, to_tensor(batch["success"], torch.float32), reduction="none"
                )
            )
        if "subtask_done" in batch:
            logits = self.subtask_head(z_pred).squeeze(-1)
            target = to_tensor(batch["subtask_done"], torch.float32)
            parts["subtask"] = weighted(
                F.binary_cross_entropy_with_logits(
                    logits, target, reduction="none", pos_weight=logits.new_tensor(5.0)
                )
            )
        if self.state_head is not None:
            vec = self.normalize_vectors(obs)  # (B, T+1, D_in)
            now = ((self.state_head(z_obs) - vec) ** 2).mean()
            ahead = weighted(((self.state_head(z_pred) - vec[:, 1:]) ** 2).mean(-1))
            parts["state"] = 0.5 * (now + ahead)
        if self.aux_dim and (self.aux_head is not None or self.slots is not None):
            aux = self.normalize_vectors(obs, self.aux_keys)
            now = ((self.aux_normalized(z_obs) - aux) ** 2).mean()
            ahead = weighted(((self.aux_normalized(z_pred) - aux[:, 1:]) ** 2).mean(-1))
            parts["aux"] = 0.5 * (now + ahead)
            if self.slots is not None:  # how far each object moved since t0, whatever its start
                moved = aux[:, 1:] - aux[:, :1]
                # the start cancels: this teaches the dynamics, not where perception puts things
                imagined = z_pred[..., free:] - z_obs[:, :1, free:]
                parts["motion"] = weighted(((imagined - moved) ** 2).mean(-1))
        flat = z_obs[..., :free].reshape(-1, free)
        parts["variance"] = F.relu(STD_FLOOR - flat.std(0)).mean()
        if self.decoder is not None:
            key = self.spec.image_keys[0]
            frames = to_tensor(obs[key]).reshape(-1, *to_tensor(obs[key]).shape[-3:])
            n = min(c.decoder_frames, frames.shape[0])
            pick = torch.randperm(frames.shape[0], generator=generator)[:n].to(frames.device)
            latents = z_obs.reshape(-1, z_obs.shape[-1])[pick].detach()
            recon = self.decoder(latents)
            parts["decoder"] = F.mse_loss(recon, frames[pick].permute(0, 3, 1, 2).float() / 255.0)
        coefs = {
            "consistency": c.consistency_coef,
            "reward": c.reward_coef,
            "success": c.success_coef,
            "subtask": c.subtask_coef,
            "state": c.state_coef,
            "variance": c.variance_coef,
            "decoder": c.decoder_coef,
            "aux": c.aux_coef,
            "motion": c.motion_coef,
        }
        total = sum(coefs[k] * v for k, v in parts.items())
        metrics = {k: float(v.detach()) for k, v in parts.items()}
        metrics["latent_std"] = float(flat.detach().std(0).mean())
        metrics["loss"] = float(total.detach())
        return total, metrics
