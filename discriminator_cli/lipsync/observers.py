"""Activation ranges for static int8: histograms over the calibration data, then the clipping
range that minimises the expected quantisation error (MSE), per tensor.

Min/max ranges let one outlier decide the step for every value: with trained-network
activations (BatchNorm scaling, residual sums) the few largest values are many times the
bulk, and the bulk then falls into a handful of int8 levels. Clipping at the MSE-optimal range
trades a small error on those outliers for a much finer step everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from discriminator_cli.lipsync.model import ConvUnit, Wav2Lip
from discriminator_cli.progress import NullProgress, ProgressSink

HISTOGRAM_BINS = 2048
UNSIGNED_LEVELS = 255.0  # post-ReLU outputs: quint8, zero point 0
SIGNED_LEVELS = 127.0    # residual units' conv output: quint8 around zero point 128
_MIN_CLIP_FRACTION = 0.02  # never clip below 2 % of the observed maximum


@dataclass
class TensorObserver:
    """Maximum of |x| on a first pass, then a histogram of |x| over [0, maximum]."""

    maximum: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_BINS))

    def see_range(self, x: Tensor) -> None:
        self.maximum = max(self.maximum, float(x.detach().abs().max()))

    def see_values(self, x: Tensor) -> None:
        if self.maximum <= 0.0:
            return
        magnitudes = x.detach().abs().float().flatten()
        magnitudes = magnitudes[magnitudes > 0]  # exact zeros quantise exactly
        self.counts += torch.histc(magnitudes, bins=HISTOGRAM_BINS, min=0.0,
                                   max=self.maximum).double().numpy()

    def mse_range(self, levels: float) -> float:
        """The clipping value c that minimises E[(x - q(x))^2] with step c / levels."""
        if self.maximum <= 0.0 or self.counts.sum() == 0:
            return max(self.maximum, 1e-8)
        width = self.maximum / HISTOGRAM_BINS
        centres = (np.arange(HISTOGRAM_BINS) + 0.5) * width
        n, s1, s2 = self.counts, self.counts * centres, self.counts * centres ** 2
        # Tail sums over the bins above each candidate (those values are clipped to c).
        tail = [np.concatenate([np.cumsum(a[::-1])[::-1][1:], [0.0]]) for a in (n, s1, s2)]
        clips = (np.arange(HISTOGRAM_BINS) + 1) * width
        inside = np.cumsum(n)
        error = (inside * (clips / levels) ** 2 / 12.0
                 + tail[2] - 2 * clips * tail[1] + clips ** 2 * tail[0])
        first = int(HISTOGRAM_BINS * _MIN_CLIP_FRACTION)
        return float(clips[first + int(np.argmin(error[first:]))])


@dataclass
class UnitObserver:
    conv: TensorObserver = field(default_factory=TensorObserver)  # conv output (signed)
    out: TensorObserver = field(default_factory=TensorObserver)   # unit output (>= 0)

    def scales(self) -> dict[str, float]:
        """Scales for the int8 unit: MSE-clipped, next to the min/max ones for reference."""
        return {"conv_scale": self.conv.mse_range(SIGNED_LEVELS) / SIGNED_LEVELS,
                "out_scale": self.out.mse_range(UNSIGNED_LEVELS) / UNSIGNED_LEVELS,
                "conv_absmax": self.conv.maximum, "out_max": self.out.maximum}


def observe(model: Wav2Lip, mels: Tensor, faces: Tensor, batch: int = 8, *,
            progress: ProgressSink | None = None) -> dict[str, dict[str, float]]:
    """Two passes of the BN-folded fp32 model over the calibration data (ranges, then
    histograms); returns {unit name: scales} (see UnitObserver.scales)."""
    progress = progress or NullProgress()
    observers = {name: UnitObserver() for name, module in model.named_modules()
                 if isinstance(module, ConvUnit)}
    modules = dict(model.named_modules())
    task = progress.start("calibrating int8 (mel windows x 2 passes)", 2 * mels.shape[0],
                          unit="windows")
    done = 0
    for method in ("see_range", "see_values"):
        hooks = []
        for name, observer in observers.items():
            unit = modules[name]

            def conv_hook(_m: nn.Module, _i: Any, out: Tensor, o: TensorObserver = observer.conv,
                          m: str = method) -> None:
                getattr(o, m)(out)

            def unit_hook(_m: nn.Module, _i: Any, out: Tensor, o: TensorObserver = observer.out,
                          m: str = method) -> None:
                getattr(o, m)(out)

            hooks.append(unit.conv_block.register_forward_hook(conv_hook))
            hooks.append(unit.register_forward_hook(unit_hook))
        try:
            with torch.inference_mode():
                for start in range(0, mels.shape[0], batch):
                    stop = min(mels.shape[0], start + batch)
                    model(mels[start:stop], faces[start:stop])
                    done += stop - start
                    progress.update(task, done)
        finally:
            for hook in hooks:
                hook.remove()
    progress.finish(task)
    return {name: observer.scales() for name, observer in observers.items()}
