"""The Wav2Lip generator, with the state-dict layout of the official checkpoints.

The network is split into its three parts so that callers can reuse work: `encode_face`
(the identity/pose reference: 7 feature maps from 96x96 down to 1x1), `encode_audio` (one
512-d embedding per 80x16 mel window) and `decode` (U-Net style decoder that consumes the face
features as skip connections). For a still photo the face features are the same for every
frame, so `encode_face` runs once and `decode` receives the features broadcast to the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

FACE_SIZE = 96
MEL_BANDS = 80
MEL_WINDOW = 16


class ConvUnit(nn.Module):
    """conv (+ bias) -> BatchNorm -> optional residual add -> ReLU.

    `conv_block` is a Sequential(conv, BatchNorm2d) so the parameter names are the official
    `...conv_block.0.weight` / `...conv_block.1.running_mean`. After BatchNorm folding the second
    element becomes nn.Identity.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int | tuple[int, int],
                 padding: int, *, residual: bool = False, transpose: bool = False,
                 output_padding: int = 0):
        super().__init__()
        conv: nn.Module
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding)
        else:
            conv = nn.Conv2d(cin, cout, kernel_size, stride, padding)
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.residual = residual
        self.transpose = transpose

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return F.relu(out)


def _res(channels: int) -> ConvUnit:
    return ConvUnit(channels, channels, 3, 1, 1, residual=True)


def _up(cin: int, cout: int) -> ConvUnit:
    """A x2 upsampling transposed convolution."""
    return ConvUnit(cin, cout, 3, 2, 1, transpose=True, output_padding=1)


class Wav2Lip(nn.Module):
    """Input: mels (B, 1, 80, 16), faces (B, 6, 96, 96) in [0, 1]; output (B, 3, 96, 96)."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(ConvUnit(6, 16, 7, 1, 3)),                                  # 96
            nn.Sequential(ConvUnit(16, 32, 3, 2, 1), _res(32), _res(32)),             # 48
            nn.Sequential(ConvUnit(32, 64, 3, 2, 1), _res(64), _res(64), _res(64)),   # 24
            nn.Sequential(ConvUnit(64, 128, 3, 2, 1), _res(128), _res(128)),          # 12
            nn.Sequential(ConvUnit(128, 256, 3, 2, 1), _res(256), _res(256)),         # 6
            nn.Sequential(ConvUnit(256, 512, 3, 2, 1), _res(512)),                    # 3
            nn.Sequential(ConvUnit(512, 512, 3, 1, 0), ConvUnit(512, 512, 1, 1, 0)),  # 1
        ])
        # 80x16 -> 27x16 -> 9x6 -> 3x3 -> 1x1 (the strides squash frequency faster than time).
        self.audio_encoder = nn.Sequential(
            ConvUnit(1, 32, 3, 1, 1), _res(32), _res(32),
            ConvUnit(32, 64, 3, (3, 1), 1), _res(64), _res(64),
            ConvUnit(64, 128, 3, 3, 1), _res(128), _res(128),
            ConvUnit(128, 256, 3, (3, 2), 1), _res(256),
            ConvUnit(256, 512, 3, 1, 0), ConvUnit(512, 512, 1, 1, 0),
        )
        # Each decoder block's input is the previous output concatenated with the face feature
        # map of the same resolution, hence the odd input widths (512+512, 512+256, ...).
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(ConvUnit(512, 512, 1, 1, 0)),                               # 1
            nn.Sequential(ConvUnit(1024, 512, 3, 1, 0, transpose=True), _res(512)),   # 3
            nn.Sequential(_up(1024, 512), _res(512), _res(512)),                      # 6
            nn.Sequential(_up(768, 384), _res(384), _res(384)),                       # 12
            nn.Sequential(_up(512, 256), _res(256), _res(256)),                       # 24
            nn.Sequential(_up(320, 128), _res(128), _res(128)),                       # 48
            nn.Sequential(_up(160, 64), _res(64), _res(64)),                          # 96
        ])
        self.output_block = nn.Sequential(
            ConvUnit(80, 32, 3, 1, 1),
            nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0),
            nn.Sigmoid(),
        )

    def encode_face(self, faces: Tensor) -> list[Tensor]:
        """(B, 6, 96, 96) -> the 7 feature maps the decoder uses as skip connections."""
        features = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            features.append(x)
        return features

    def encode_audio(self, mels: Tensor) -> Tensor:
        """(B, 1, 80, 16) -> (B, 512, 1, 1)."""
        return self.audio_encoder(mels)

    def decode(self, audio_embedding: Tensor, face_features: list[Tensor]) -> Tensor:
        """Face features may have batch 1 (a still photo): they are broadcast to the batch."""
        batch = audio_embedding.shape[0]
        x = audio_embedding
        for block, skip in zip(self.face_decoder_blocks, reversed(face_features), strict=True):
            x = block(x)
            if skip.shape[0] != batch:
                skip = skip.expand(batch, -1, -1, -1)
            x = torch.cat((x, skip), dim=1)
        return self.output_block(x)

    def forward(self, mels: Tensor, faces: Tensor) -> Tensor:
        return self.decode(self.encode_audio(mels), self.encode_face(faces))


def conv_units(model: nn.Module) -> list[ConvUnit]:
    return [m for m in model.modules() if isinstance(m, ConvUnit)]
