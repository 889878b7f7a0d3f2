"""Small building blocks: MLPs, a lean image encoder and a transposed-conv decoder.

Convolutions use ReLU: Mish on conv feature maps took a third of a training step on the CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(
    in_dim: int, hidden: int, out_dim: int, layers: int = 2, norm_out: bool = False
) -> nn.Sequential:
    """``layers`` hidden Linear-LayerNorm-Mish blocks, then a Linear to ``out_dim``."""
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.Mish()]
        dim = hidden
    blocks.append(nn.Linear(dim, out_dim))
    if norm_out:
        blocks.append(nn.LayerNorm(out_dim, elementwise_affine=False))
    return nn.Sequential(*blocks)


class SlotDynamics(nn.Module):
    """Each object slot's increment by one network shared across slots: ``context (N, C)`` (what
    every slot sees: the free latent, all slots, the action), ``slots (N, K, S)`` and a learned
    ``code (K, D)`` per slot -> ``(N, K, S)``. The context's first layer runs once per sample,
    the rest once per slot; the last layer starts at zero ("nothing moves")."""

    def __init__(self, context_dim: int, slot_size: int, code_dim: int, hidden: int) -> None:
        super().__init__()
        self.context = nn.Linear(context_dim, hidden)
        self.own = nn.Linear(slot_size + code_dim, hidden, bias=False)
        self.net = nn.Sequential(
            nn.LayerNorm(hidden), nn.Mish(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.Mish(),
            nn.Linear(hidden, slot_size),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(
        self, context: torch.Tensor, slots: torch.Tensor, code: torch.Tensor
    ) -> torch.Tensor:
        own = torch.cat([slots, code.expand(*slots.shape[:-2], *code.shape)], dim=-1)
        return self.net(self.context(context)[..., None, :] + self.own(own))


class SpatialSoftmax(nn.Module):
    """``(N, C, h, w) -> (N, 2C)``: the expected image coordinates of each channel's activation.

    Keypoints like these localise small objects far better than a flattened feature map
    (Levine et al., 2016).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(x.reshape(n, c, h * w), dim=-1).reshape(n, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)
        xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)
        return torch.cat([(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1)], dim=1)


class SharpSpatialSoftmax(nn.Module):
    """``(N, C, h, w) -> (N, 2C)`` expected coordinates of each channel, with a learned per-channel
    temperature (Levine et al., 2016). Without it, ReLU maps of magnitude ~0.5 give a nearly
    uniform softmax: the keypoints barely moved between images (std 0.02 over a batch) and the
    policy ignored where things were."""

    def __init__(self, channels: int, temperature: float = 10.0) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.full((channels, 1, 1), math.log(temperature)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        logits = (x * self.log_temperature.exp()).reshape(n, c, h * w)
        weights = torch.softmax(logits, dim=-1).reshape(n, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)
        xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)
        return torch.cat([(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1)], dim=1)


class ImageEncoder(nn.Module):
    """``(N, H, W, 3)``-derived ``(N, 3, H, W) uint8 -> (N, F)``: an 8x8 stride-4 conv, a 4x4 stride-2
    conv, then 3x3 convs; features are the flattened map plus spatial-softmax keypoints.

    With ``slots > 0`` it also finds objects (:meth:`objects`): a 1x1 conv turns the first conv's
    map (15x15 at 64 px, each unit seeing 8x8 px, so a 3-4 px cube covers several) into one map per
    slot, read as where it peaks (expected x, y under a sharp spatial softmax) and how strongly
    (its maximum: a presence cue). Coordinates are translation-equivariant: a cube at a new place
    moves its keypoint, where the flattened map let a model trained on a few dozen layouts
    recognise each one and recite it.

    Striding early keeps it cheap on a CPU (about 1 MMAC per 64x64 image at the default widths).
    """

    def __init__(self, image_size: int, channels: tuple[int, ...], slots: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 8, stride=4), nn.ReLU()]
        previous = channels[0]
        for i, ch in enumerate(channels[1:]):
            kernel, stride = (4, 2) if i == 0 else (3, 1)
            layers += [nn.Conv2d(previous, ch, kernel, stride=stride), nn.ReLU()]
            previous = ch
        self.convs = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax()
        if slots:
            self.slot_maps = nn.Conv2d(channels[0], slots, 1)
            self.slot_log_temperature = nn.Parameter(torch.full((slots, 1), math.log(10.0)))
            side = (image_size - 8) // 4 + 1  # the first conv's map
            ys, xs = torch.meshgrid(
                torch.linspace(-1.0, 1.0, side), torch.linspace(-1.0, 1.0, side), indexing="ij"
            )
            grid = torch.stack([xs.flatten(), ys.flatten()], dim=1)
            self.register_buffer("slot_grid", grid, persistent=False)
        with torch.no_grad():
            self.out_dim = int(
                self(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)).shape[1]
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_objects(images)[0]

    def features_and_objects(
        self, images: torch.Tensor, objects: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(N, F)`` features and, with slots (unless ``objects=False``), ``(N, K, 3)`` per slot:
        x, y in [-1, 1] and the peak (the map's mean under its own softmax weights)."""
        first = self.convs[:2](images.float() * (1.0 / 255.0) - 0.5)
        maps = self.convs[2:](first)
        features = torch.cat([maps.flatten(1), self.keypoints(maps)], dim=1)
        if not objects or not hasattr(self, "slot_maps"):
            return features, None
        heat = self.slot_maps(first).flatten(2)  # (N, K, h * w)
        weights = torch.softmax(heat * self.slot_log_temperature.exp(), dim=-1)
        coords = weights @ self.slot_grid  # (N, K, 2)
        peaks = (weights * heat).sum(-1, keepdim=True)
        return features, torch.cat([coords, peaks], dim=-1)


class ImageDecoder(nn.Module):
    """``(N, latent) -> (N, 3, size, size)`` in [0, 1]: a linear map to 8x8, then three 2x upsamplings."""

    def __init__(self, latent_dim: int, image_size: int, channels: tuple[int, int, int]) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the decoder needs an image size divisible by 8, got {image_size}")
        self.base = image_size // 8
        self.channels = channels
        self.fc = nn.Linear(latent_dim, channels[0] * self.base * self.base)
        c0, c1, c2 = channels
        self.net = nn.Sequential(
            nn.Mish(),
            nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1),
            nn.Mish(),
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1),
            nn.Mish(),
            nn.ConvTranspose2d(c2, 3, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.channels[0], self.base, self.base)
        return torch.sigmoid(self.net(x))
