"""The naive pixel world model the benchmark measures against (not used for anything else).

Four 3x3 stride-2 convs of 32-256 channels, a 256-d latent with an MLP transition, and a
mirrored transposed-conv decoder that reconstructs every frame and predicts every next frame in
pixels: the straightforward design our latent model is compared with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NaivePixelWorldModel(nn.Module):
    def __init__(
        self,
        action_dim: int,
        image_size: int = 64,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        latent_dim: int = 256,
    ) -> None:
        super().__init__()
        layers, prev = [], 3
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 3, stride=2, padding=1), nn.ReLU()]
            prev = ch
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.base = image_size // 2 ** len(channels)
        flat = channels[-1] * self.base * self.base
        self.to_latent = nn.Linear(flat, latent_dim)
        self.dynamics = nn.Sequential(
            nn.Linear(latent_dim + action_dim, 512), nn.ReLU(), nn.Linear(512, latent_dim)
        )
        self.from_latent = nn.Linear(latent_dim, flat)
        dec, rev = [], list(reversed(channels))
        for i, ch in enumerate(rev):
            out = rev[i + 1] if i + 1 < len(rev) else 3
            dec += [nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1)]
            if i + 1 < len(rev):
                dec.append(nn.ReLU())
        self.decoder = nn.Sequential(*dec)
        self.channels = channels

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.from_latent(z).view(-1, self.channels[-1], self.base, self.base)
        return torch.sigmoid(self.decoder(x))

    def loss(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``frames (B, T + 1, H, W, 3) uint8``, ``actions (B, T, A)``."""
        B, T1 = frames.shape[:2]
        x = frames.reshape(-1, *frames.shape[2:]).permute(0, 3, 1, 2).float() / 255.0
        z = self.to_latent(self.encoder(x)).view(B, T1, -1)
        loss = F.mse_loss(self.decode(z.reshape(B * T1, -1)), x)
        zt = z[:, 0]
        preds = []
        for t in range(actions.shape[1]):
            zt = zt + self.dynamics(torch.cat([zt, actions[:, t]], -1))
            preds.append(zt)
        pred_frames = self.decode(torch.stack(preds, 1).reshape(B * (T1 - 1), -1))
        target = x.view(B, T1, *x.shape[1:])[:, 1:].reshape(B * (T1 - 1), *x.shape[1:])
        return loss + F.mse_loss(pred_frames, target)
