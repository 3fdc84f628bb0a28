"""Static int8 Wav2Lip on fbgemm's quantized kernels, built from plain tensors.

Why not torch.ao's converters: dynamic quantisation touches no Wav2Lip layer (it has no
Linear), FX graph mode is deprecated, and PT2E (torchao) only gets fast int8 through
torch.compile, which needs a C++ compiler on the user's machine. The network is a fixed chain
of conv units, so it is built here directly from the quantized ATen ops, and a quantised
checkpoint is nothing but tensors and numbers (loadable with torch.load(weights_only=True)).

Scheme: activations are quint8, per-tensor; every conv unit ends in a ReLU, so its output uses
zero point 0 and requantising the conv output into that range *is* the ReLU. Conv weights are
qint8 symmetric per output channel; transposed-conv weights per tensor (fbgemm has no
per-channel transposed conv). The mel input (signed, [-4, 4]) and the 1x1 output head +
sigmoid stay float32: they are tiny and set the output's precision.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from discriminator_cli.lipsync.model import ConvUnit, Wav2Lip
from discriminator_cli.progress import NullProgress, ProgressSink

FORMAT = "discriminator-wav2lip-int8"
FORMAT_VERSION = 1
_QUANT_MAX = 127.0
_ACT_LEVELS = 255.0


@contextlib.contextmanager
def quiet_quantized() -> Iterator[None]:
    """torch 2.13 warns on every quantized-tensor creation that the API is deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation")
        yield


@dataclass
class UnitQuant:
    """One conv unit's int8 form: the packed weights and the output scales."""

    packed: Any
    transpose: bool
    residual: bool
    conv_scale: float   # conv output before the residual add (signed: zero point 128)
    out_scale: float    # unit output after ReLU (zero point 0)

    def __call__(self, qx: Tensor) -> Tensor:
        ops = torch.ops.quantized
        if self.transpose:
            return ops.conv_transpose2d(qx, self.packed, self.out_scale, 0)
        if self.residual:
            conv = ops.conv2d(qx, self.packed, self.conv_scale, 128)
            return ops.add_relu(conv, qx, self.out_scale, 0)
        return ops.conv2d_relu(qx, self.packed, self.out_scale, 0)


def _unit_names(model: Wav2Lip) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, ConvUnit)]


def _act_scale(maximum: float) -> float:
    return max(float(maximum), 1e-8) / _ACT_LEVELS


def calibrate(model: Wav2Lip, mels: Tensor, faces: Tensor, batch: int = 16, *,
              progress: ProgressSink | None = None) -> dict[str, dict[str, float]]:
    """Run the BN-folded fp32 model and record each unit's activation ranges.

    Returns {unit name: {"conv_absmax": ..., "out_max": ...}}.
    """
    ranges: dict[str, dict[str, float]] = {}
    hooks = []
    for name, module in model.named_modules():
        if not isinstance(module, ConvUnit):
            continue
        record = ranges.setdefault(name, {"conv_absmax": 0.0, "out_max": 0.0})

        def conv_hook(_m: nn.Module, _inp: Any, out: Tensor, record: dict = record) -> None:
            record["conv_absmax"] = max(record["conv_absmax"], float(out.abs().max()))

        def unit_hook(_m: nn.Module, _inp: Any, out: Tensor, record: dict = record) -> None:
            record["out_max"] = max(record["out_max"], float(out.max()))

        hooks.append(module.conv_block.register_forward_hook(conv_hook))
        hooks.append(module.register_forward_hook(unit_hook))
    progress = progress or NullProgress()
    task = progress.start("calibrating int8 (mel windows)", mels.shape[0])
    try:
        with torch.no_grad():
            for start in range(0, mels.shape[0], batch):
                model(mels[start:start + batch], faces[start:start + batch])
                progress.update(task, min(mels.shape[0], start + batch))
    finally:
        for hook in hooks:
            hook.remove()
    progress.finish(task)
    return ranges


def export_state(model: Wav2Lip, ranges: dict[str, dict[str, float]],
                 meta: dict[str, Any]) -> dict[str, Any]:
    """The savable int8 checkpoint: int8 weights, their scales, float biases, activation scales."""
    units: dict[str, dict[str, Any]] = {}
    modules = dict(model.named_modules())
    for name in _unit_names(model):
        conv = modules[name].conv_block[0]
        weight = conv.weight.detach().float()
        transpose = isinstance(conv, nn.ConvTranspose2d)
        if transpose:
            scale = (weight.abs().max() / _QUANT_MAX).clamp_min(1e-12).reshape(1)
            qweight = torch.round(weight / scale).clamp(-127, 127)
        else:
            scale = (weight.abs().amax(dim=(1, 2, 3)) / _QUANT_MAX).clamp_min(1e-12)
            qweight = torch.round(weight / scale.reshape(-1, 1, 1, 1)).clamp(-127, 127)
        units[name] = {
            "weight_int8": qweight.to(torch.int8),
            "weight_scale": scale.float(),
            "bias": conv.bias.detach().float().clone(),
            # Signed conv output around zero point 128: [-128, 127] steps cover +-absmax.
            "conv_scale": max(ranges[name]["conv_absmax"], 1e-8) / 127.0,
            "out_scale": _act_scale(ranges[name]["out_max"]),
        }
    head = model.output_block[1]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "units": units,
        "head": {"weight": head.weight.detach().float().clone(),
                 "bias": head.bias.detach().float().clone()},
        "meta": meta,
    }


def is_int8_state(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


class Int8Wav2Lip(nn.Module):
    """The quantised network; same encode_face/encode_audio/decode split as Wav2Lip.

    Face features are quint8 tensors; the audio embedding is too; outputs are float32.
    """

    def __init__(self, state: dict[str, Any], structure: Wav2Lip | None = None):
        super().__init__()
        with quiet_quantized():
            self._build(state, structure)

    def _build(self, state: dict[str, Any], structure: Wav2Lip | None) -> None:
        structure = structure or Wav2Lip()
        modules = dict(structure.named_modules())
        self.units: dict[str, UnitQuant] = {}
        for name, saved in state["units"].items():
            template = modules[name]
            conv = template.conv_block[0]
            scale = saved["weight_scale"].double()
            if isinstance(conv, nn.ConvTranspose2d):
                qweight = torch.quantize_per_tensor(
                    saved["weight_int8"].float() * float(scale[0]), float(scale[0]), 0,
                    torch.qint8)
                packed = torch.ops.quantized.conv_transpose2d_prepack(
                    qweight, saved["bias"], list(conv.stride), list(conv.padding),
                    list(conv.output_padding), list(conv.dilation), conv.groups)
            else:
                dequant = saved["weight_int8"].float() * scale.float().reshape(-1, 1, 1, 1)
                qweight = torch.quantize_per_channel(
                    dequant, scale, torch.zeros(scale.numel(), dtype=torch.long), 0, torch.qint8)
                packed = torch.ops.quantized.conv2d_prepack(
                    qweight, saved["bias"], list(conv.stride), list(conv.padding),
                    list(conv.dilation), conv.groups)
            self.units[name] = UnitQuant(packed, isinstance(conv, nn.ConvTranspose2d),
                                         template.residual, float(saved["conv_scale"]),
                                         float(saved["out_scale"]))
        self.head = nn.Conv2d(32, 3, kernel_size=1)
        with torch.no_grad():
            self.head.weight.copy_(state["head"]["weight"])
            self.head.bias.copy_(state["head"]["bias"])
        self._face_blocks = self._block_names("face_encoder_blocks", structure.face_encoder_blocks)
        self._decoder_blocks = self._block_names("face_decoder_blocks",
                                                 structure.face_decoder_blocks)
        self._audio_units = [f"audio_encoder.{i}" for i in range(len(structure.audio_encoder))]
        self.meta = dict(state.get("meta", {}))

    @staticmethod
    def _block_names(prefix: str, blocks: nn.ModuleList) -> list[list[str]]:
        return [[f"{prefix}.{i}.{j}" for j in range(len(block))]
                for i, block in enumerate(blocks)]

    def _run(self, names: list[str], qx: Tensor) -> Tensor:
        for name in names:
            qx = self.units[name](qx)
        return qx

    def encode_face(self, faces: Tensor) -> list[Tensor]:
        # Faces are k/255 for integer k: scale 1/255 represents them exactly.
        qx = torch.quantize_per_tensor(faces.contiguous(memory_format=torch.channels_last),
                                       1.0 / _ACT_LEVELS, 0, torch.quint8)
        features = []
        for names in self._face_blocks:
            qx = self._run(names, qx)
            features.append(qx)
        return features

    def encode_audio(self, mels: Tensor) -> Tensor:
        first = self.units[self._audio_units[0]]
        # The mel is signed; quantise it symmetric around zero point 128.
        qx = torch.quantize_per_tensor(mels.contiguous(memory_format=torch.channels_last),
                                       4.0 / 127.0, 128, torch.quint8)
        qx = first(qx)
        return self._run(self._audio_units[1:], qx)

    def decode(self, audio_embedding: Tensor, face_features: list[Tensor]) -> Tensor:
        batch = audio_embedding.shape[0]
        qx = audio_embedding
        for names, skip in zip(self._decoder_blocks, reversed(face_features), strict=True):
            qx = self._run(names, qx)
            if skip.shape[0] != batch:
                # quantized cat takes a slow path on stride-0 (expanded) inputs: copy first.
                skip = skip.expand(batch, -1, -1, -1).contiguous(
                    memory_format=torch.channels_last)
            scale = max(qx.q_scale(), skip.q_scale())
            qx = torch.ops.quantized.cat([qx, skip], 1, scale, 0)
        qx = self._run(["output_block.0"], qx)
        return torch.sigmoid(self.head(qx.dequantize().contiguous()))

    def forward(self, mels: Tensor, faces: Tensor) -> Tensor:
        return self.decode(self.encode_audio(mels), self.encode_face(faces))
