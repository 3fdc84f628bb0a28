"""The editors' job: a source video -> a two-pass x264 ladder packaged as DASH + HLS.

Modules: job (one source, step by step), batch (several sources), presets (TOML data),
ladder (which rungs, what sizes), x264 (ffmpeg argv of the passes), rung_cache (the on-disk
cache of encoded rungs), work (per-run work folders), measure (bitrates and GOPs of a rung),
packaging (Shaka Packager and Bento4 backends), hls_fixes (HLS post-fixes both packagers need),
quality (PSNR/SSIM), samples (generated test sources). Editors' features: editors (the steps),
captions / captions_source / captions_hls, loudness, poster; overlays with alpha: overlay (the
job), vp9 (argv), webm_dash (the MPD), image_sequence (PNG sequences).
"""

from discriminator_cli.encode.batch import encode_many, plan_sources
from discriminator_cli.encode.job import EncodeOptions, EncodeResult, RungResult, encode_source

__all__ = ["EncodeOptions", "EncodeResult", "RungResult", "encode_many", "encode_source",
           "plan_sources"]
