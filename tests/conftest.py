"""Shared fixtures: an isolated cache/config per session and real packages made by `encode`.

The package fixtures are session-scoped and shared: tests that mutate a package must copy it
first (shutil.copytree into tmp_path).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.tools import find_bento4

# A suite started in the background by a shell without job control (`make test &`) inherits
# SIGINT ignored, and so would every CLI it starts: the Ctrl-C tests would see it ignored.
# A handled signal is reset to the default in a child at exec, an ignored one stays ignored.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Long enough for the playback tests (play >= 4 s, seek to the middle) and for several GOPs.
SAMPLE_SECONDS = 8.0


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches, user presets and torch hub never touch the real home directory."""
    base = tmp_path_factory.mktemp("home")
    os.environ["DISCRIMINATOR_CACHE_DIR"] = str(base / "cache")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["TORCH_HOME"] = str(base / "torch")


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8 s 640x360 25 fps .mov (near-lossless H.264 + PCM stereo tone)."""
    return generate_sample(tmp_path_factory.mktemp("raw") / "sample.mov",
                           seconds=SAMPLE_SECONDS, width=640, height=360)


def _package(tmp_path_factory: pytest.TempPathFactory, source: Path, packager: str) -> Path:
    out = tmp_path_factory.mktemp(f"media-{packager}") / "sample"
    encode_source(source, EncodeOptions(preset=load_preset("small"), out_dir=out,
                                        packager=packager, validate=False))
    return out


@pytest.fixture(scope="session")
def shaka_package(tmp_path_factory: pytest.TempPathFactory, sample_source: Path) -> Path:
    """media/sample made by `encode --preset small --packager shaka` (2 rungs + eng audio)."""
    return _package(tmp_path_factory, sample_source, "shaka")


@pytest.fixture(scope="session")
def bento4_package(tmp_path_factory: pytest.TempPathFactory, sample_source: Path) -> Path:
    """The same with `--packager bento4`; skipped when Bento4 is not installed."""
    if find_bento4() is None:
        pytest.skip("Bento4 (mp4fragment, mp4dash) not on PATH nor in DISCRIMINATOR_BENTO4_DIR")
    return _package(tmp_path_factory, sample_source, "bento4")


@pytest.fixture(scope="session")
def chunked_package(tmp_path_factory: pytest.TempPathFactory, sample_source: Path) -> Path:
    """The shaka package made by `--engine chunked` (2 s chunks: four chunks joined), from
    its own cache so that no rung comes from the local engine's."""
    base = tmp_path_factory.mktemp("media-chunked")
    encode_source(sample_source, EncodeOptions(preset=load_preset("small"), out_dir=base / "sample",
                                               validate=False, engine="chunked",
                                               chunk_seconds=2.0, cache_dir=base / "cache"))
    return base / "sample"


@pytest.fixture(params=["shaka", pytest.param("bento4", marks=pytest.mark.bento4)])
def any_package(request: pytest.FixtureRequest) -> Path:
    """Each backend's package in turn."""
    return request.getfixturevalue(f"{request.param}_package")


@pytest.fixture(scope="session")
def serve_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The serve tests' inputs, made once (the checkpoint alone is 140 MB): see serve_helpers."""
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    from tests.serve_helpers import make_assets

    return make_assets(tmp_path_factory.mktemp("serve-assets"))
