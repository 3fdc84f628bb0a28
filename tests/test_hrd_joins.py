"""The decoder buffer across chunk joins: the check on made-up chunks, and a film of many
one-GOP chunks whose joins drift into an underflow unless the chunked engine repairs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.chunked import ChunkedEncoder
from discriminator_cli.encode.chunks import plan_chunks
from discriminator_cli.encode.hrd_joins import (
    JOIN_TOLERANCE,
    ChunkBuffer,
    _hex_dump_bytes,
    check_join,
    read_chunk_buffer,
    vbv_init_for,
)
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path
from discriminator_cli.validate import validate_package
from discriminator_cli.validate.h264 import HrdParameters

DRIFT = Path(__file__).parent / "data" / "hrd_drift.toml"
GOP_SECONDS = 1.92
SECONDS = 64  # 33 one-GOP chunks: x264's overhead drifts the 1 s buffer ~3 % per join
HRD = HrdParameters(bit_rate=8000, cpb_size=16000, cbr=True)


def _chunk(planned: float, frame_bits: int, frames: int = 10) -> ChunkBuffer:
    return ChunkBuffer(HRD, planned, [frame_bits // 8] * frames, [0.1] * frames)


def test_a_chunk_that_starts_where_it_planned_needs_nothing() -> None:
    check = check_join(_chunk(14400, 800), 14400)
    assert not check.repair and check.end == pytest.approx(14400)


def test_a_steady_overhead_moves_the_next_join_and_a_far_start_is_repaired() -> None:
    # 80 bits a frame over the rate: the chunk ends 800 bits below where it began
    check = check_join(_chunk(14400, 880), 14400)
    assert check.end == pytest.approx(13600) and not check.repair
    drifted = 14400 - JOIN_TOLERANCE * 16000 - 1
    assert check_join(_chunk(14400, 800), drifted).repair


def test_a_start_that_breaks_the_buffer_is_repaired_even_within_the_tolerance() -> None:
    # CBR filling up to a full buffer as planned: 200 bits more at the start overflow it
    assert check_join(_chunk(15000, 704), 15050).repair is False
    assert check_join(_chunk(15000, 704), 15200).repair


def test_vbv_init_is_a_fraction_x264_accepts() -> None:
    assert vbv_init_for(8000, HRD) == 0.5
    assert vbv_init_for(16000, HRD) == 0.999 and vbv_init_for(0, HRD) == 0.01


def test_ffprobe_hex_dumps_read_back() -> None:
    dump = ("00000000: 0000 02ad 0605 ffff a9dc 45e9 bde6 d948  ..........E....H\n"
            "00000010: 0164                                     .d\n")
    assert _hex_dump_bytes(dump) == bytes.fromhex("000002ad0605ffffa9dc45e9bde6d9480164")


@pytest.fixture(scope="module")
def drift_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("drift") / "film.mov", seconds=SECONDS,
                           width=160, height=90, audio=False)


def _encode(source: Path, out: Path, cache: Path, *, bound: bool) -> None:
    encode_source(source, EncodeOptions(preset=load_preset(str(DRIFT)), out_dir=out,
                                        cache_dir=cache, engine="chunked",
                                        chunk_seconds=GOP_SECONDS, force=True, validate=False),
                  encoder=ChunkedEncoder(GOP_SECONDS, bound_hrd=bound))


def test_many_chunks_drift_into_an_underflow_and_the_repair_bounds_it(
        drift_source: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _encode(drift_source, tmp_path / "drifting", cache, bound=False)
    report = validate_package(tmp_path / "drifting")
    assert [f.check for f in report.errors] == ["media.hrd-underflow"]

    # Same chunks from the cache (the joined rung dropped: it was made without the walk);
    # the walk encodes again only the chunks whose joins went astray.
    for joined in (cache / "rungs").iterdir():
        joined.unlink()
    _encode(drift_source, tmp_path / "bounded", cache, bound=True)
    report = validate_package(tmp_path / "bounded")
    assert not [f for f in report.findings if f.check.startswith("media.hrd")]
    runner = CommandRunner()
    chunks = sorted((cache / "chunks").glob("*.mp4"), key=lambda p: p.stat().st_mtime_ns)
    buffers = [read_chunk_buffer(path, runner) for path in chunks]
    assert all(b is not None for b in buffers)
    assert len(buffers) == len(plan_chunks(SECONDS * 25, 48, 25.0, GOP_SECONDS))
    replanned = [b for b in buffers if b is not None and abs(b.planned - 0.9 * b.hrd.cpb_size) > 1]
    assert replanned  # some chunks now start from a level other than x264's default 90 %


SURPLUS = Path(__file__).parent / "data" / "hrd_surplus.toml"


class _Notes(CommandRunner):
    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_a_surplus_at_the_joins_is_taken_out_with_filler_not_an_encode(tmp_path: Path) -> None:
    source = generate_sample(tmp_path / "film.mov", seconds=16, width=640, height=360,
                             audio=False)
    packages, cache = {}, tmp_path / "cache"
    for bound in (False, True):
        runner = _Notes()
        out = tmp_path / f"bound-{bound}"
        encode_source(source, EncodeOptions(preset=load_preset(str(SURPLUS)), out_dir=out,
                                            cache_dir=cache, engine="chunked",
                                            chunk_seconds=5.76, force=True, validate=False),
                      runner=runner, encoder=ChunkedEncoder(5.76, bound_hrd=bound))
        packages[bound] = out
        passes = [argv for argv in runner.history if "-pass" in argv]
        # three chunks, two passes each, then the same chunks from the cache: no encode again
        assert len(passes) == (0 if bound else 2 * 3)
        for joined in (cache / "rungs").iterdir():  # made without the walk: join again
            joined.unlink()
    errors = [f.check for f in validate_package(packages[False]).errors]
    assert errors == ["media.hrd-overflow"]
    report = validate_package(packages[True])
    assert not [f for f in report.findings if f.check.startswith("media.hrd")]
    assert "180p: 2 join(s) given filler data, 0 chunk(s) encoded again" in " ".join(runner.notes)
    # The same pictures: filler is skipped by decoders.
    decoded = [subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(p / "video_180p.mp4"),
                               "-f", "rawvideo", "-"], check=True, capture_output=True).stdout
               for p in (packages[False], packages[True])]
    assert decoded[0] == decoded[1]
