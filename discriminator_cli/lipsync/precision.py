"""Inference-time rewrites of the model: BatchNorm folding, bf16 + channels_last, CPU checks.

Folding BatchNorm into the preceding convolution is exact up to float rounding (eval-mode BN
is an affine map per channel) and removes a full pass over every activation tensor.
"""

from __future__ import annotations

import math
import platform
from functools import lru_cache
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from torch import Tensor, nn

from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync import Precision
from discriminator_cli.lipsync.model import Wav2Lip, conv_units

REQUESTABLE: tuple[str, ...] = get_args(Precision)
PRECISIONS = tuple(p for p in REQUESTABLE if p != "auto")
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def fold_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Scale conv's weights and shift its bias so conv(x) == bn(conv_before(x)) in eval mode."""
    assert bn.running_var is not None and bn.running_mean is not None
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        # Conv2d weights are (out, in, kh, kw); ConvTranspose2d weights are (in, out, kh, kw).
        shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
        conv.weight.mul_(scale.reshape(shape))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + bn.bias
        conv.bias = nn.Parameter(new_bias)


def fold_batchnorm(model: Wav2Lip) -> Wav2Lip:
    """Fold every ConvUnit's BatchNorm into its conv, in place; the model must be in eval()."""
    for unit in conv_units(model):
        bn = unit.conv_block[1]
        if isinstance(bn, nn.BatchNorm2d):
            fold_conv_bn(unit.conv_block[0], bn)
            unit.conv_block[1] = nn.Identity()
    return model


def is_folded(model: Wav2Lip) -> bool:
    return all(isinstance(u.conv_block[1], nn.Identity) for u in conv_units(model))


class Float32Head(nn.Module):
    """Runs the wrapped module in float32 whatever its input dtype.

    The last 1x1 conv + sigmoid are 0.1 % of the compute but set the output's precision: in
    bf16 a sigmoid output near 1 has a step of 2^-8, which is one full 8-bit level.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.float()

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.float())


def to_bf16(model: Wav2Lip) -> Wav2Lip:
    """bf16 weights in channels_last (oneDNN's fast layout); the output head stays float32."""
    head = nn.Sequential(model.output_block[1], model.output_block[2])
    model.output_block = nn.Sequential(model.output_block[0], Float32Head(head))
    model.output_block[0].to(torch.bfloat16)
    for part in (model.face_encoder_blocks, model.audio_encoder, model.face_decoder_blocks):
        part.to(torch.bfloat16)
    return model.to(memory_format=torch.channels_last)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True where bf16 matrix maths runs in hardware (AVX512-BF16 or AMX), not emulated.

    Without it oneDNN emulates bf16 through fp32 and it is slower than plain fp32.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if any(flag in cpu_flags() for flag in _BF16_CPU_FLAGS):
        return True
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def resolve_precision(requested: str, device: str, *, quantised_file: bool = False,
                      path: Path | None = None) -> str:
    """"auto" -> int8 for a quantised file, bf16 on CUDA or a bf16-capable CPU, else fp32."""
    if requested not in REQUESTABLE:
        raise BadInputError(f"unknown precision {requested!r}",
                            hint=f"use one of {', '.join(REQUESTABLE)}")
    if quantised_file:
        if requested not in ("auto", "int8"):
            raise BadInputError(f"this checkpoint is int8-quantised; it cannot run as {requested}",
                                path=path, hint="load the original fp32 checkpoint for fp32/bf16")
        if device != "cpu":
            raise BadInputError("int8 (fbgemm) models run on the CPU only",
                                hint="use --device cpu, or bf16 on CUDA")
        return "int8"
    if requested == "int8":
        raise BadInputError("int8 needs a quantised checkpoint, and this one is not", path=path,
                            hint="make one with `discriminator quantize CKPT -o FILE` "
                                 "and pass that file")
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over whole arrays (inf when identical)."""
    diff = reference.astype(np.float64) - test.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)
