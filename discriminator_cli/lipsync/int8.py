"""Static int8 Wav2Lip on fbgemm's quantized kernels, built from plain tensors; each conv unit
int8 or, where int8 would hurt the picture, bf16 / fp32 (a mixed plan chosen by `quantize`).

Why not torch.ao's converters: dynamic quantisation touches no Wav2Lip layer (it has no
Linear), FX graph mode is deprecated, and PT2E (torchao) only gets fast int8 through
torch.compile, which needs a C++ compiler on the user's machine. The network is a fixed chain
of conv units, so it is built here directly from the quantized ATen ops, and a quantised
checkpoint is nothing but tensors and numbers (loadable with torch.load(weights_only=True)).

Scheme: activations are quint8, per-tensor; every conv unit ends in a ReLU, so its output uses
zero point 0 and requantising the conv output into that range *is* the ReLU. Conv weights are
qint8 symmetric per output channel; transposed-conv weights per tensor (fbgemm has no
per-channel transposed conv). The mel input (signed, [-4, 4]) and the 1x1 output head +
sigmoid stay float32: they are tiny and set the output's precision. Every unit records its
output scale, int8 or not, so a float unit's output is quantised for an int8 successor.

Format 2 stores a plan {unit: "int8" | "bf16" | "fp32"}; format 1 files (every unit int8,
written before plans existed) load unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from discriminator_cli.lipsync.model import ConvUnit, Wav2Lip

FORMAT = "discriminator-wav2lip-int8"
FORMAT_VERSION = 2
PLAN_PRECISIONS = ("int8", "bf16", "fp32")
_QUANT_MAX = 127.0
_ACT_LEVELS = 255.0
_FLOAT_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


_quiet = threading.Lock()
_quiet_users = 0
_quiet_saved: Any = None


@contextlib.contextmanager
def quiet_quantized() -> Iterator[None]:
    """torch 2.13 warns on every quantized-tensor creation that the API is deprecated.

    Counted, not nested: warnings.catch_warnings saves and restores the process-wide filters,
    so two threads (the engine's lanes, serve's loops) entering and leaving it interleaved
    would restore each other's state and leave a filter behind each time."""
    global _quiet_users, _quiet_saved
    with _quiet:
        if _quiet_users == 0:
            _quiet_saved = warnings.catch_warnings()
            _quiet_saved.__enter__()
            warnings.filterwarnings("ignore", message=r".*quantized tensor creation")
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet:
            _quiet_users -= 1
            if _quiet_users == 0:
                _quiet_saved.__exit__(None, None, None)
                _quiet_saved = None


@dataclass
class UnitQuant:
    """One conv unit's int8 form: the packed weights and the output scales."""

    packed: Any
    transpose: bool
    residual: bool
    conv_scale: float   # conv output before the residual add (signed: zero point 128)
    out_scale: float    # unit output after ReLU (zero point 0)
    precision: str = "int8"

    def __call__(self, qx: Tensor) -> Tensor:
        ops = torch.ops.quantized
        if self.transpose:
            return ops.conv_transpose2d(qx, self.packed, self.out_scale, 0)
        if self.residual:
            conv = ops.conv2d(qx, self.packed, self.conv_scale, 128)
            return ops.add_relu(conv, qx, self.out_scale, 0)
        return ops.conv2d_relu(qx, self.packed, self.out_scale, 0)


@dataclass
class FloatUnit:
    """A conv unit kept in bf16 or fp32 (BatchNorm folded); out_scale serves int8 successors."""

    conv: nn.Module
    residual: bool
    out_scale: float
    precision: str

    def __call__(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return F.relu(out + x if self.residual else out)


def unit_names(model: Wav2Lip) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, ConvUnit)]


def export_state(model: Wav2Lip, scales: dict[str, dict[str, float]],
                 meta: dict[str, Any], plan: dict[str, str] | None = None) -> dict[str, Any]:
    """The savable checkpoint: per unit, int8 weights + their scales, or bf16/fp32 weights, as
    the plan says (default: all int8); float biases; activation scales for every unit."""
    units: dict[str, dict[str, Any]] = {}
    modules = dict(model.named_modules())
    names = unit_names(model)
    plan = plan or dict.fromkeys(names, "int8")
    for name in names:
        conv = modules[name].conv_block[0]
        weight = conv.weight.detach().float()
        saved: dict[str, Any] = {
            "bias": conv.bias.detach().float().clone(),
            "conv_scale": float(scales[name]["conv_scale"]),
            "out_scale": float(scales[name]["out_scale"]),
        }
        if plan[name] != "int8":
            saved["weight"] = weight.to(_FLOAT_DTYPES[plan[name]]).clone()
        elif isinstance(conv, nn.ConvTranspose2d):
            scale = (weight.abs().max() / _QUANT_MAX).clamp_min(1e-12).reshape(1)
            saved["weight_int8"] = torch.round(weight / scale).clamp(-127, 127).to(torch.int8)
            saved["weight_scale"] = scale.float()
        else:
            scale = (weight.abs().amax(dim=(1, 2, 3)) / _QUANT_MAX).clamp_min(1e-12)
            saved["weight_int8"] = torch.round(weight / scale.reshape(-1, 1, 1, 1)).clamp(
                -127, 127).to(torch.int8)
            saved["weight_scale"] = scale.float()
        units[name] = saved
    head = model.output_block[1]
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "plan": dict(plan),
            "units": units,
            "head": {"weight": head.weight.detach().float().clone(),
                     "bias": head.bias.detach().float().clone()},
            "meta": meta}


def minmax_scales(ranges: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Scales from plain min/max ranges ({"conv_absmax", "out_max"}): format 1's rule."""
    return {name: {"conv_scale": max(r["conv_absmax"], 1e-8) / 127.0,
                   "out_scale": max(float(r["out_max"]), 1e-8) / _ACT_LEVELS}
            for name, r in ranges.items()}


def is_int8_state(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def state_plan(state: dict[str, Any]) -> dict[str, str]:
    """{unit: precision}; a format 1 file has every unit in int8."""
    return dict(state.get("plan") or dict.fromkeys(state["units"], "int8"))


def _pack(saved: dict[str, Any], conv: nn.Module) -> Any:
    scale = saved["weight_scale"].double()
    if isinstance(conv, nn.ConvTranspose2d):
        qweight = torch.quantize_per_tensor(saved["weight_int8"].float() * float(scale[0]),
                                            float(scale[0]), 0, torch.qint8)
        return torch.ops.quantized.conv_transpose2d_prepack(
            qweight, saved["bias"], list(conv.stride), list(conv.padding),
            list(conv.output_padding), list(conv.dilation), conv.groups)
    dequant = saved["weight_int8"].float() * scale.float().reshape(-1, 1, 1, 1)
    qweight = torch.quantize_per_channel(dequant, scale, torch.zeros(scale.numel(),
                                                                     dtype=torch.long),
                                         0, torch.qint8)
    return torch.ops.quantized.conv2d_prepack(qweight, saved["bias"], list(conv.stride),
                                              list(conv.padding), list(conv.dilation),
                                              conv.groups)


def _float_conv(saved: dict[str, Any], template: nn.Module, precision: str) -> nn.Module:
    conv = copy.deepcopy(template)  # the template's shape, stride, padding; our weights
    with torch.no_grad():
        conv.weight.copy_(saved["weight"].float())
        conv.bias.copy_(saved["bias"])
    return conv.to(_FLOAT_DTYPES[precision]).to(memory_format=torch.channels_last).eval()


def _check_shapes(name: str, saved: dict[str, Any], conv: nn.Module) -> None:
    """Prepacking takes int8 weights of any shape; the model's convs take only their own."""
    weight, bias = tuple(saved["weight_int8"].shape), tuple(saved["bias"].shape)
    if weight != tuple(conv.weight.shape) or bias != (conv.weight.shape[0 if isinstance(
            conv, nn.Conv2d) else 1],):
        raise ValueError(f"unit {name}: weight {weight} and bias {bias} do not fit "
                         f"{tuple(conv.weight.shape)}")


class Int8Wav2Lip(nn.Module):
    """The quantised network; same encode_face/encode_audio/decode split as Wav2Lip.

    Activations between int8 units are quint8 tensors, between float units bf16/fp32 ones;
    every hand-over converts with the producer's output scale. Outputs are float32.
    """

    def __init__(self, state: dict[str, Any], structure: Wav2Lip | None = None, *,
                 unit_cache: dict[tuple[str, str], UnitQuant | FloatUnit] | None = None):
        """unit_cache: built units shared between networks (quantize builds many plans from
        the same units; they are never modified after they are built)."""
        super().__init__()
        with quiet_quantized():
            self._build(state, structure, {} if unit_cache is None else unit_cache)

    def _build(self, state: dict[str, Any], structure: Wav2Lip | None,
               cache: dict[tuple[str, str], UnitQuant | FloatUnit]) -> None:
        structure = structure or Wav2Lip()
        modules = dict(structure.named_modules())
        self.plan = state_plan(state)
        self.units: dict[str, UnitQuant | FloatUnit] = {}
        for name, saved in state["units"].items():
            template = modules[name]
            conv = template.conv_block[0]
            precision = self.plan[name]
            if (name, precision) in cache:
                self.units[name] = cache[(name, precision)]
                continue
            if precision == "int8":
                _check_shapes(name, saved, conv)
                self.units[name] = UnitQuant(_pack(saved, conv),
                                             isinstance(conv, nn.ConvTranspose2d),
                                             template.residual, float(saved["conv_scale"]),
                                             float(saved["out_scale"]))
            else:
                self.units[name] = FloatUnit(_float_conv(saved, conv, precision),
                                             template.residual, float(saved["out_scale"]),
                                             precision)
            cache[(name, precision)] = self.units[name]
        missing = [name for name in unit_names(structure) if name not in self.units]
        if missing:  # forward() would fail at the first missing unit, mid-clip
            raise KeyError(f"{len(missing)} unit(s) missing, first {missing[0]}")
        self.head = nn.Conv2d(32, 3, kernel_size=1)
        with torch.no_grad():
            self.head.weight.copy_(state["head"]["weight"])
            self.head.bias.copy_(state["head"]["bias"])
        self._face_blocks = self._block_names("face_encoder_blocks", structure.face_encoder_blocks)
        self._decoder_blocks = self._block_names("face_decoder_blocks",
                                                 structure.face_decoder_blocks)
        self._audio_units = [f"audio_encoder.{i}" for i in range(len(structure.audio_encoder))]
        # Who reads each decoder concat: the next block's first unit, last the output unit.
        self._cat_readers = [names[0] for names in self._decoder_blocks[1:]] + ["output_block.0"]
        self.meta = dict(state.get("meta", {}))

    @staticmethod
    def _block_names(prefix: str, blocks: nn.ModuleList) -> list[list[str]]:
        return [[f"{prefix}.{i}.{j}" for j in range(len(block))]
                for i, block in enumerate(blocks)]

    def _convert(self, x: Tensor, scale: float, reader: str) -> Tensor:
        """x in the form unit `reader` takes: quint8 (with the producer's scale) or float."""
        unit = self.units[reader]
        if unit.precision == "int8":
            if x.is_quantized:
                return x
            return torch.quantize_per_tensor(x.float().contiguous(
                memory_format=torch.channels_last), scale, 0, torch.quint8)
        dtype = _FLOAT_DTYPES[unit.precision]
        x = x.dequantize() if x.is_quantized else x
        return x.to(dtype).contiguous(memory_format=torch.channels_last)

    def _run(self, names: list[str], x: Tensor, scale: float) -> tuple[Tensor, float]:
        for name in names:
            x = self.units[name](self._convert(x, scale, name))
            scale = self.units[name].out_scale
        return x, scale

    def encode_face(self, faces: Tensor) -> list[Tensor]:
        # Faces are k/255 for integer k: scale 1/255 represents them exactly.
        x, scale = faces.contiguous(memory_format=torch.channels_last), 1.0 / _ACT_LEVELS
        features = []
        for names in self._face_blocks:
            x, scale = self._run(names, x, scale)
            features.append(x)
        return features

    def encode_audio(self, mels: Tensor) -> Tensor:
        first_name = self._audio_units[0]
        first = self.units[first_name]
        mels = mels.contiguous(memory_format=torch.channels_last)
        if first.precision == "int8":
            # The mel is signed; quantise it symmetric around zero point 128.
            x = first(torch.quantize_per_tensor(mels.float(), 4.0 / 127.0, 128, torch.quint8))
        else:
            x = first(mels.to(_FLOAT_DTYPES[first.precision]))
        x, _ = self._run(self._audio_units[1:], x, first.out_scale)
        return x

    def decode(self, audio_embedding: Tensor, face_features: list[Tensor]) -> Tensor:
        batch = audio_embedding.shape[0]
        x, scale = audio_embedding, self.units[self._audio_units[-1]].out_scale
        skips = list(reversed(face_features))
        skip_scales = [self.units[names[-1]].out_scale for names in reversed(self._face_blocks)]
        for names, skip, skip_scale, reader in zip(self._decoder_blocks, skips, skip_scales,
                                                   self._cat_readers, strict=True):
            x, scale = self._run(names, x, scale)
            if skip.shape[0] != batch:
                # quantized cat takes a slow path on stride-0 (expanded) inputs: copy first.
                skip = skip.expand(batch, -1, -1, -1).contiguous(
                    memory_format=torch.channels_last)
            x = self._convert(x, scale, reader)
            skip = self._convert(skip, skip_scale, reader)
            scale = max(scale, skip_scale)
            x = (torch.ops.quantized.cat([x, skip], 1, scale, 0) if x.is_quantized
                 else torch.cat([x, skip], 1))
        x, _ = self._run(["output_block.0"], x, scale)
        x = x.dequantize() if x.is_quantized else x
        return torch.sigmoid(self.head(x.float().contiguous()))

    def forward(self, mels: Tensor, faces: Tensor) -> Tensor:
        return self.decode(self.encode_audio(mels), self.encode_face(faces))
