"""The vision-language backbone of System 1 and System 2: images, words and proprioception become
tokens, a small transformer fuses them, and a learned readout token carries the result. The words
also FiLM-modulate the image convolutions (see :class:`ImageTokenizer`).

Why a transformer over FiLM: the instruction must *select* things in the image ("the red cube",
"the green pad"), which attention from word tokens to image-cell tokens does directly; at these
sizes (about 80 tokens of width 64) two layers cost well under a millisecond on a CPU core.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.config import FusionConfig
from world_models.config import ObsSpec
from world_models.networks import SharpSpatialSoftmax, mlp


def as_tensor(
    x, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """An array or tensor as a tensor of ``dtype`` on ``device`` (no copy when it already is):
    models move their inputs to their own device, so callers may pass CPU arrays."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=dtype)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """DrQ-style augmentation: pad ``(B, H, W, 3)`` images by replicating edges, crop back at a
    random offset per image."""
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    dev = images.device
    padded = nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).to(dev)  # (y, x)
    rows = offsets[:, :1] + torch.arange(h, device=dev)[None]  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=dev)[None]  # (B, W)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.to(images.dtype)


class ImageTokenizer(nn.Module):
    """``(N, H, W, 3) uint8`` + a text vector ``(N, d)`` -> ``(N, cells + 1, d)``: one token per cell
    of the last conv map pooled to at most 4x4 (with a learned position), plus one token of
    spatial-softmax keypoints taken at the full resolution of the last map.

    Every conv is 3x3 with stride 2 (64 px -> 8x8 with three layers): a 2 cm cube is 3-4 px wide
    at 64 px, and a first 8x8 stride-4 conv (as in the world model) lost it. The text modulates
    every conv after the first (FiLM: ``relu(gamma * conv(x) + beta)``), so the keypoints can lock
    onto the object the words name ("the blue cube") before any attention.
    """

    def __init__(self, image_size: int, channels: tuple[int, ...], d_model: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, channels[0], 3, stride=2, padding=1)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], ch, 3, stride=2, padding=1) for i, ch in enumerate(channels[1:])
        )
        self.film = nn.Linear(d_model, 2 * sum(channels[1:])) if len(channels) > 1 else None
        if self.film is not None:  # start as the identity modulation
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        with torch.no_grad():
            maps = self._maps(torch.zeros(1, 3, image_size, image_size), torch.zeros(1, d_model))
        c, h, w = maps.shape[1:]
        self.pool = nn.AdaptiveAvgPool2d((min(4, h), min(4, w)))
        self.cells = min(4, h) * min(4, w)
        self.feature_dim = c * h * w + 2 * c
        self.cell_proj = nn.Linear(c, d_model)
        self.position = nn.Parameter(torch.randn(1, self.cells, d_model) * 0.02)
        self.keypoints = SharpSpatialSoftmax(c)
        self.keypoint_proj = nn.Linear(2 * c, d_model)

    def _maps(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.first(x))
        if self.film is None:
            return x
        params = self.film(text)
        start = 0
        for conv in self.convs:
            ch = conv.out_channels
            gamma = 1 + params[:, start : start + ch, None, None]
            beta = params[:, start + ch : start + 2 * ch, None, None]
            x = torch.relu(gamma * conv(x) + beta)
            start += 2 * ch
        return x

    def forward(
        self, images: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens ``(N, cells + 1, d)`` and the raw features ``(N, C * h * w + 2C)``: the flattened
        last map and the keypoints."""
        x = images.permute(0, 3, 1, 2).float() * (1.0 / 255.0) - 0.5
        maps = self._maps(x, text)  # (N, C, h, w)
        cells = self.cell_proj(self.pool(maps).flatten(2).transpose(1, 2)) + self.position
        points = self.keypoints(maps)
        tokens = torch.cat([cells, self.keypoint_proj(points).unsqueeze(1)], dim=1)
        return tokens, torch.cat([maps.flatten(1), points], dim=1)


class FusionBackbone(nn.Module):
    """Images (one tokenizer per camera) + words + proprioception (+ extra tokens) -> ``(B, d)``.

    Observations are a dict: ``<image key> (B, H, W, 3) uint8`` for each of ``spec.image_keys``,
    ``<vector key> (B, D)`` for each of ``spec.vector_keys``; ``tokens (B, L) int64`` (0 = padding).
    """

    def __init__(self, config: FusionConfig, spec: ObsSpec, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        d = config.d_model
        # one tokenizer shared by every camera (all cameras go through it in one batched call),
        # told apart by a learned camera embedding
        self.images = ImageTokenizer(spec.image_size, config.conv_channels, d)
        self.camera_embedding = nn.Parameter(torch.randn(len(spec.image_keys), 1, d) * 0.02)
        self.words = nn.Embedding(vocab_size, d, padding_idx=0)
        self.word_position = nn.Parameter(torch.randn(1, config.max_text_len, d) * 0.02)
        used = config.vector_dims_used or tuple(range(spec.vector_dim))
        if spec.vector_dim and max(used) >= spec.vector_dim:
            raise ValueError(
                f"vector_dims_used {used} reach past the vector observation ({spec.vector_dim} entries)"
            )
        self.register_buffer("vector_index", torch.tensor(used, dtype=torch.long), persistent=False)
        self.proprio = nn.Linear(len(used), d) if spec.vector_dim else None
        self.readout = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d,
            config.heads,
            config.ff_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        # one layer over the words alone: word order decides which colour names the object and
        # which the destination, and the FiLM vector is pooled from these contextual words
        self.text_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self._text_cache: dict[bytes, tuple] = {}
        # a direct path from the (text-conditioned) conv features, keypoints and proprioception to
        # the readout, as in the CNN + MLP policies that imitate well here: attention need not
        # learn to carry precise coordinates before the policy can use them
        feature_dim = self.images.feature_dim * len(spec.image_keys)
        self.direct = mlp(feature_dim + (len(used) if spec.vector_dim else 0), 2 * d, d, layers=1)
        self.register_buffer("vector_mean", torch.zeros(len(used)))
        self.register_buffer("vector_std", torch.ones(len(used)))

    def set_normalizer(self, vectors: np.ndarray) -> None:
        """Statistics of the concatenated vector keys over the data: ``vectors (N, D)``."""
        if self.spec.vector_dim:
            vectors = vectors[:, self.vector_index.numpy()]
            std = vectors.std(0)
            self.vector_mean.copy_(torch.as_tensor(vectors.mean(0), dtype=torch.float32))
            self.vector_std.copy_(torch.as_tensor(np.where(std < 1e-4, 1.0, std + 1e-3)))

    def encode_text(self, tokens: torch.Tensor):
        """Trimmed ``tokens (B, L)`` -> padding mask, whether any, contextual words ``(B, L, d)`` and
        their mean ``(B, d)``. At inference the result is cached per token sequence: an agent
        conditions on the same text for many chunks."""
        key = None
        if torch.is_inference_mode_enabled():
            key = tokens.cpu().numpy().tobytes() + str(tuple(tokens.shape)).encode()
            if key in self._text_cache:
                return self._text_cache[key]
        text_pad = tokens == 0
        text_pad[:, 0] = False  # a row of padding only still has one key to attend to
        any_pad = bool(text_pad.any())
        words = self.words(tokens) + self.word_position[:, : tokens.shape[1]]
        words = self.text_encoder(words, src_key_padding_mask=text_pad if any_pad else None)
        keep = (~text_pad).unsqueeze(-1).float()
        text = (words * keep).sum(1) / keep.sum(1)  # (B, d): mean of the contextual words
        if key is not None:
            if len(self._text_cache) >= 256:
                self._text_cache.clear()
            self._text_cache[key] = (text_pad, any_pad, words, text)
        return text_pad, any_pad, words, text

    def train(self, mode: bool = True):
        self._text_cache.clear()  # weights are about to change
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache.clear()
        return super()._load_from_state_dict(*args, **kwargs)

    def forward(
        self, obs: dict, tokens: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``-> (B, d)``; ``extra (B, E, d)`` are added tokens (e.g. the plan position)."""
        parts, direct = [], []
        batch = tokens.shape[0]
        device = self.readout.device
        tokens = as_tensor(tokens, torch.long, device)[:, : self.config.max_text_len]
        used = int((tokens != 0).sum(1).max()) if tokens.numel() else 0
        tokens = tokens[:, : max(used, 1)]  # drop columns that are padding in every row
        text_pad, any_pad, words, text = self.encode_text(tokens)
        cams = len(self.spec.image_keys)
        if cams:
            stacked = torch.cat([as_tensor(obs[k], device=device) for k in self.spec.image_keys])
            img, points = self.images(stacked, text.repeat(cams, 1))
            img = img.unflatten(0, (cams, batch)) + self.camera_embedding[:, None]
            direct.append(points.unflatten(0, (cams, batch)).transpose(0, 1).flatten(1))
            parts.append(img.transpose(0, 1).flatten(1, 2))  # (B, cams * cells, d)
        parts.append(words)
        if self.proprio is not None:
            vec = torch.cat(
                [as_tensor(obs[k], torch.float32, device) for k in self.spec.vector_keys], -1
            )
            vec = vec[:, self.vector_index]
            vec = (vec - self.vector_mean) / self.vector_std
            parts.append(self.proprio(vec).unsqueeze(1))
            direct.append(vec)
        if extra is not None:
            parts.append(extra)
        parts.append(self.readout.expand(batch, -1, -1))
        x = torch.cat(parts, dim=1)
        pad = None
        if any_pad:  # a mask costs a slow attention path: only when needed
            pad = torch.zeros(batch, x.shape[1], dtype=torch.bool, device=x.device)
            start = parts[0].shape[1] if cams else 0
            pad[:, start : start + tokens.shape[1]] = text_pad
        x = self.transformer(x, src_key_padding_mask=pad)
        return self.norm(x[:, -1] + self.direct(torch.cat(direct, dim=-1)))
