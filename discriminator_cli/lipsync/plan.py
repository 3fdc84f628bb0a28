"""Choosing which conv units run in int8: per-unit sensitivity, then the largest int8 plan
that meets the PSNR threshold, and the plan's measured speed against bf16 and fp32.

Sensitivity of a unit = the output error (MSE, float, over the calibration windows) when that
unit alone is int8. Units are taken into int8 in order of error per multiply-accumulate (the
cheapest accuracy for the most compute first); a binary search finds the longest such prefix
whose whole-model PSNR on the calibration windows meets the threshold. The caller verifies the
plan on held-out windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from discriminator_cli.lipsync.int8 import Int8Wav2Lip, export_state, quiet_quantized, unit_names
from discriminator_cli.lipsync.model import Wav2Lip
from discriminator_cli.progress import NullProgress, ProgressSink

SEARCH_MARGIN_DB = 0.5  # the search aims this far above the threshold: held-out frames differ


def float_psnr(reference: Tensor, candidate: Tensor) -> float:
    """PSNR in dB of two [0, 1] outputs on the 8-bit scale, before rounding (continuous)."""
    mse = float(((reference.float() - candidate.float()) * 255.0).pow(2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def unit_macs(model: Wav2Lip, mels: Tensor, faces: Tensor) -> dict[str, float]:
    """Multiply-accumulates per generated frame of each unit (face encoder: once per face)."""
    macs: dict[str, float] = {}
    hooks = []
    names = set(unit_names(model))
    for name, module in model.named_modules():
        if name not in names:
            continue
        conv = module.conv_block[0]

        def hook(_m: nn.Module, inputs: Any, out: Tensor, name: str = name,
                 conv: nn.Module = conv) -> None:
            # weight[0]: (in, kh, kw) for Conv2d, (out, kh, kw) for ConvTranspose2d, whose
            # cost is counted per input position.
            positions = inputs[0][0] if isinstance(conv, nn.ConvTranspose2d) else out[0]
            macs[name] = float(positions.numel() * conv.weight[0].numel())

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(mels[:1], faces[:1])
    finally:
        for handle in hooks:
            handle.remove()
    return macs


@dataclass
class PlanContext:
    """What every candidate plan is built from and judged on."""

    model: Wav2Lip                      # BN-folded fp32
    scales: dict[str, dict[str, float]]
    fallback: str                       # "bf16" or "fp32": the precision of non-int8 units
    mels: Tensor                        # (N, 1, 80, 16) search windows
    face: Tensor                        # (1, 6, 96, 96)
    reference: Tensor                   # fp32 output on those windows
    _forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    _units: dict[tuple[str, str], Any] = field(default_factory=dict)

    def build(self, int8_units: set[str], meta: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], Int8Wav2Lip]:
        """The checkpoint state and the network of this plan (units exported and built once,
        then shared by every plan)."""
        names = unit_names(self.model)
        for precision in ("int8", self.fallback):
            if precision not in self._forms:
                self._forms[precision] = export_state(self.model, self.scales, {},
                                                      dict.fromkeys(names, precision))
        plan = {name: "int8" if name in int8_units else self.fallback for name in names}
        state = {**self._forms["int8"], "plan": plan, "meta": dict(meta or {}),
                 "units": {name: self._forms[plan[name]]["units"][name] for name in names}}
        return state, Int8Wav2Lip(state, self.model, unit_cache=self._units).eval()

    def score(self, int8_units: set[str]) -> float:
        _, network = self.build(int8_units)
        return float_psnr(self.reference, run(network, self.mels, self.face))


def run(network: nn.Module, mels: Tensor, face: Tensor, batch: int = 16) -> Tensor:
    """Generated faces (float, [0, 1]) for these windows and one face (encoded once)."""
    outputs = []
    with torch.inference_mode(), quiet_quantized():
        features = network.encode_face(face)
        for start in range(0, len(mels), batch):
            audio = network.encode_audio(mels[start:start + batch])
            outputs.append(network.decode(audio, features).float())
    return torch.cat(outputs)


def sensitivities(context: PlanContext, progress: ProgressSink | None = None
                  ) -> dict[str, float]:
    """{unit: output MSE (8-bit scale) with only that unit in int8}."""
    progress = progress or NullProgress()
    names = unit_names(context.model)
    task = progress.start("int8 sensitivity (layers)", len(names), unit="layers")
    errors = {}
    for done, name in enumerate(names, 1):
        score = context.score({name})
        errors[name] = 0.0 if math.isinf(score) else 255.0 ** 2 / 10 ** (score / 10)
        progress.update(task, done)
    progress.finish(task)
    return errors


def search(context: PlanContext, order: list[str], threshold_db: float,
           progress: ProgressSink | None = None) -> tuple[int, float]:
    """The longest prefix of `order` in int8 whose PSNR meets threshold + margin: (length,
    its PSNR on the search windows). Binary search (error grows with the prefix)."""
    progress = progress or NullProgress()
    target = threshold_db + SEARCH_MARGIN_DB
    low, high = 0, len(order)
    best = (0, math.inf)
    steps = max(1, math.ceil(math.log2(len(order) + 1)))
    task = progress.start("int8 plan search (candidate plans)", steps, unit="plans")
    tried = 0
    while low < high:
        middle = (low + high + 1) // 2
        score = context.score(set(order[:middle]))
        tried += 1
        progress.update(task, min(tried, steps))
        if score >= target:
            low, best = middle, (middle, score)
        else:
            high = middle - 1
    progress.finish(task)
    return best


def generation_speed(networks: dict[str, nn.Module], mels: Tensor, face: Tensor,
                     repeats: int = 3, clock: Callable[[], float] = time.perf_counter
                     ) -> dict[str, float]:
    """Frames per second of generation (audio encoder + decoder, the face encoded once, as
    for a still photo), best of `repeats`, for each network, measured back to back."""
    speeds = {}
    for label, network in networks.items():
        run(network, mels[:4], face)  # warm-up: packing, oneDNN primitive caches
        best = math.inf
        for _ in range(repeats):
            started = clock()
            run(network, mels, face)
            best = min(best, clock() - started)
        speeds[label] = len(mels) / best
    return speeds
