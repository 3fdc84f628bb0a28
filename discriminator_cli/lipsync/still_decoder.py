"""Wav2Lip's decoder for a face that does not change from frame to frame (a still photo).

Each decoder stage starts with a conv over `cat(x, skip)`, where `skip` is a face-encoder
feature map. A conv is linear in its input channels, so that conv is
`conv_x(x) + conv_skip(skip) + bias`: for a still photo the second term is the same for every
frame. `face_terms` computes it once per face; `decode` then runs each stage's conv on the
audio path's channels only and adds the face's term. Measured with
benchmarks/lipsync_still_decoder.py: the decoder's work a frame falls by the skip channels'
share of those convs (about a tenth of a model call in bf16).

The result equals `Wav2Lip.decode` up to float rounding (the two halves are rounded before
they are added). Needs a float model with its BatchNorm folded (the engine's fp32 and bf16
models); the int8 model keeps its own decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from discriminator_cli.lipsync.model import ConvUnit, Wav2Lip


@dataclass(frozen=True, eq=False)
class _Stage:
    """One decoder stage's first conv, split into its audio-path and face-skip halves."""
    conv: nn.Conv2d | nn.ConvTranspose2d
    x_weight: Tensor     # the weights that read the previous stage's channels
    skip_weight: Tensor  # the weights that read the face feature map
    rest: nn.Module      # what follows the first unit in the stage

    def x_part(self, x: Tensor) -> Tensor:
        return self._apply(x, self.x_weight, None)

    def skip_part(self, skip: Tensor) -> Tensor:
        return self._apply(skip, self.skip_weight, self.conv.bias)

    def _apply(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        conv = self.conv
        if isinstance(conv, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, weight, bias, conv.stride, conv.padding,
                                      conv.output_padding, conv.groups, conv.dilation)
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _split_stage(unit: nn.Module, skip_channels: int, rest: nn.Module) -> _Stage | None:
    if not isinstance(unit, ConvUnit) or unit.residual:
        return None
    conv, after = unit.conv_block[0], unit.conv_block[1]
    if not isinstance(after, nn.Identity) or not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d):
        return None  # BatchNorm not folded, or not a plain conv: no exact split
    if conv.groups != 1:
        return None
    weight = conv.weight.detach()
    # Weights stay in the conv's own memory format (channels_last in bf16).
    layout = (torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last)
              and not weight.is_contiguous() else torch.contiguous_format)
    # Input channels are dim 0 of a transposed conv's weight, dim 1 of a conv's.
    dim = 0 if isinstance(conv, nn.ConvTranspose2d) else 1
    x_channels = weight.shape[dim] - skip_channels
    x_weight, skip_weight = weight.split([x_channels, skip_channels], dim=dim)
    return _Stage(conv, x_weight.contiguous(memory_format=layout),
                  skip_weight.contiguous(memory_format=layout), rest)


class StillDecoder:
    """`decode` for a fixed face: `face_terms(features)` once, then `decode(audio, terms)`."""

    def __init__(self, first_block: nn.Module, stages: list[_Stage]):
        self._first_block = first_block
        self._stages = stages

    @classmethod
    def for_model(cls, model: nn.Module) -> StillDecoder | None:
        """The split decoder of a folded float Wav2Lip; None for any other model."""
        if not isinstance(model, Wav2Lip):
            return None
        blocks = list(model.face_decoder_blocks)
        # The skip after decoder block i is face feature -(i + 1); it feeds block i + 1, or
        # the output block after the last one.
        skip_channels = [block[-1].conv_block[0].out_channels
                         for block in reversed(model.face_encoder_blocks)]
        consumers = [(block[0], nn.Sequential(*block[1:])) for block in blocks[1:]]
        output = model.output_block
        consumers.append((output[0], nn.Sequential(*output[1:])))
        stages = []
        for (unit, rest), channels in zip(consumers, skip_channels, strict=True):
            stage = _split_stage(unit, channels, rest)
            if stage is None:
                return None
            stages.append(stage)
        return cls(blocks[0], stages)

    def face_terms(self, features: list[Tensor]) -> list[Tensor]:
        """Each stage's face half (bias included) for one face's 7 feature maps."""
        skips = list(reversed(features))
        return [stage.skip_part(skip) for stage, skip in zip(self._stages, skips, strict=True)]

    def decode(self, audio_embedding: Tensor, terms: list[Tensor]) -> Tensor:
        """Terms of batch 1 are broadcast to the batch; stacked per-row terms also work."""
        x = self._first_block(audio_embedding)
        for stage, term in zip(self._stages, terms, strict=True):
            x = stage.rest(F.relu(stage.x_part(x) + term))
        return x

