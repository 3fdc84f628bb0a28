"""Overlays with alpha: ProRes 4444, QuickTime Animation and PNG sequences -> VP9-with-alpha
WebM (DASH on-demand + progressive), the decoded alpha matching the source's, the refusal of
sources without alpha, and validate on WebM packages."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from discriminator_cli.encode.overlay import has_alpha
from discriminator_cli.encode.presets import load_preset, parse_preset
from discriminator_cli.errors import PresetError
from discriminator_cli.tools import ffmpeg_path, ffprobe_path
from discriminator_cli.webm import read_layout
from tests.editors_media import encode_json, ffmpeg, run_cli, tiny_source

GOP = 10
# A disc that moves across a coloured field; alpha 1 inside the disc, 0 outside, soft edge.
ALPHA_SHAPE = ("geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)':"
               "a='{max}*clip((28-hypot(X-W/2-30*sin(T*2),Y-H/2))/3,0,1)'")
PRESET = f"""
description = "test overlay"
[video]
encoder = "libvpx-vp9"
gop_frames = {GOP}
[vp9]
cpu_used = 5
image_frame_rate = 10
[poster]
time_seconds = 0.5
[[rungs]]
name = "top"
width = 160
height = 90
bitrate = "300k"
bufsize = "600k"
[[rungs]]
name = "small"
width = 96
height = 54
bitrate = "150k"
bufsize = "300k"
"""


def alpha_source(path: Path, codec: list[str], pix_fmt: str, *, seconds: float = 2.0,
                 alpha_max: int = 1023) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"color=c=0x3060c0:s=160x90:r=25:d={seconds},"
           f"format=yuva444p10le,{ALPHA_SHAPE.format(max=alpha_max)}", *codec,
           "-pix_fmt", pix_fmt, str(path))
    return path


def alpha_psnr(encoded: Path, reference: Path) -> float:
    """PSNR of the alpha plane: the WebM decoded with libvpx-vp9 (which keeps alpha) against
    the reference decoded by ffmpeg's own decoder, measured here with ffmpeg's psnr filter."""
    out = subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-nostdin", "-c:v", "libvpx-vp9", "-i", str(encoded),
         "-i", str(reference), "-filter_complex",
         "[0:v]format=yuva420p,alphaextract[a];[1:v]format=yuva420p,alphaextract[b];"
         "[a][b]psnr", "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    match = re.search(r"PSNR y:(\S+)", out)
    assert match, out
    return float("inf") if match.group(1) == "inf" else float(match.group(1))


def keyframes(path: Path) -> list[int]:
    out = subprocess.run([ffprobe_path(), "-v", "error", "-select_streams", "v:0",
                          "-show_entries", "packet=flags", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    return [i for i, flags in enumerate(out) if "K" in flags]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overlay")
    (root / "overlay-test.toml").write_text(PRESET)
    alpha_source(root / "prores.mov", ["-c:v", "prores_ks", "-profile:v", "4444"],
                 "yuva444p10le")
    return root


@pytest.fixture(scope="module")
def prores_package(media: Path) -> tuple[Path, dict]:
    out = media / "pkg"
    result = encode_json(str(media / "prores.mov"), "--preset", str(media / "overlay-test.toml"),
                         "-o", str(out), "--cache-dir", str(media / "cache"))
    return out, result


def test_prores_4444_becomes_vp9_alpha_dash_and_progressive(
        prores_package: tuple[Path, dict], media: Path) -> None:
    out, result = prores_package
    assert result["overlay"]["hls"] is None and "over HLS" in result["overlay"]["hls_note"]
    assert result["overlay"]["progressive"] == ["overlay_top.webm", "overlay_small.webm"]
    assert sorted(result["files"]) == ["overlay_small.webm", "overlay_top.webm", "poster.jpg",
                                       "stream.mpd"]
    assert not list(out.glob("*.m3u8"))
    assert result["validation"]["errors"] == 0
    # The same fixed keyframe interval in every rung (50 frames, one every GOP).
    expected = list(range(0, 50, GOP))
    for name in ("top", "small"):
        webm = out / f"overlay_{name}.webm"
        assert keyframes(webm) == expected
        layout = read_layout(webm)
        assert layout.alpha_mode == 1 and layout.codec_id == "V_VP9"
        assert [offset for _, offset in layout.cue_points] == [c.offset for c in layout.clusters]
    # The rates count the alpha plane too (ffprobe's packet sizes leave it out).
    top = result["rungs"][0]
    file_rate = (out / "overlay_top.webm").stat().st_size * 8 / 2.0
    assert abs(top["average_bitrate"] - file_rate) < 0.1 * file_rate, (top, file_rate)
    mpd = (out / "stream.mpd").read_text()
    assert 'mimeType="video/webm"' in mpd and 'codecs="vp09.00.' in mpd
    # The top rung is at the source's size: its alpha plane must match the source's.
    assert alpha_psnr(out / "overlay_top.webm", media / "prores.mov") >= 35.0


def test_validate_accepts_the_webm_package_and_catches_a_wrong_index(
        prores_package: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = prores_package
    done = run_cli("validate", str(out), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    # A copy whose MPD points @indexRange at the wrong bytes fails, naming the check.
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in out.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    text = (broken / "stream.mpd").read_text()
    text = re.sub(r'indexRange="(\d+)-', lambda m: f'indexRange="{int(m.group(1)) + 1}-', text,
                  count=1)
    (broken / "stream.mpd").write_text(text)
    done = run_cli("validate", str(broken), "--json")
    assert done.returncode == 1
    checks = {f["check"] for f in json.loads(done.stdout)["findings"]}
    assert "dash.index-range" in checks


def test_validate_warns_when_a_rewrite_dropped_the_alpha_signal(
        prores_package: tuple[Path, dict], tmp_path: Path) -> None:
    """Shaka Packager 3.8 rewrites WebM without AlphaMode: validate says players will show
    the overlay opaque."""
    from discriminator_cli.tools import packager_path

    out, _ = prores_package
    subprocess.run([packager_path(), f"in={out / 'overlay_top.webm'},stream=video,"
                    "output=v.webm", "--mpd_output", "s.mpd", "--quiet"], cwd=tmp_path,
                   check=True, capture_output=True)
    done = run_cli("validate", str(tmp_path), "--json")
    findings = json.loads(done.stdout)["findings"]
    assert any(f["check"] == "webm.alpha-not-signalled" for f in findings), findings


def test_qtrle_source(media: Path) -> None:
    source = alpha_source(media / "anim.mov", ["-c:v", "qtrle"], "argb", seconds=0.8,
                          alpha_max=1023)
    result = encode_json(str(source), "--preset", str(media / "overlay-test.toml"),
                         "-o", str(media / "qtrle-pkg"), "--cache-dir", str(media / "cache"))
    assert result["source"]["pix_fmt"] == "argb"
    assert alpha_psnr(media / "qtrle-pkg" / "overlay_top.webm", source) >= 35.0


def test_png_sequence_folder_and_pattern(media: Path) -> None:
    pytest.importorskip("PIL")
    np = pytest.importorskip("numpy")
    from PIL import Image

    frames = media / "frames"
    frames.mkdir()
    yy, xx = np.mgrid[0:90, 0:160]
    for n in range(10):
        rgba = np.zeros((90, 160, 4), np.uint8)
        rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 40 + 10 * n, 90
        distance = np.hypot(xx - 60 - 4 * n, yy - 45)
        rgba[..., 3] = np.clip((30 - distance) / 3, 0, 1) * 255
        Image.fromarray(rgba, "RGBA").save(frames / f"title_{n:03d}.png")
    # A folder is the same sequence (planned only: the pattern below does the encode).
    by_folder = run_cli("encode", str(frames), "--preset", str(media / "overlay-test.toml"),
                        "--media-root", str(media / "root"), "--cache-dir",
                        str(media / "cache"), "--dry-run", "--json")
    assert by_folder.returncode == 0, by_folder.stderr
    assert "-i pipe:0 -c:v ffv1" in by_folder.stdout and "10 PNG frames" in by_folder.stdout
    planned = json.loads(by_folder.stdout[by_folder.stdout.index("\n{\n") + 1:])
    assert planned["results"][0]["out_dir"].endswith("root/frames")
    by_pattern = encode_json(str(frames / "title_%03d.png"), "--preset",
                             str(media / "overlay-test.toml"), "--media-root",
                             str(media / "root"), "--cache-dir", str(media / "cache"))
    assert by_pattern["out_dir"].endswith("root/title")
    assert by_pattern["rungs"][0]["frames"] == 10
    webm = Path(by_pattern["out_dir"]) / "overlay_top.webm"
    decoded = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-c:v", "libvpx-vp9", "-i", str(webm), "-vf",
         "format=yuva420p,alphaextract", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True).stdout
    got = np.frombuffer(decoded, np.uint8).reshape(10, 90, 160).astype(float)
    want = np.stack([np.asarray(Image.open(frames / f"title_{n:03d}.png"))[..., 3]
                     for n in range(10)]).astype(float)
    mse = float(np.mean((got - want) ** 2))
    assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) >= 35.0


def test_source_without_alpha_is_refused(media: Path, tmp_path: Path) -> None:
    source = tiny_source(tmp_path / "opaque.mov", seconds=1.0)
    out = tmp_path / "pkg"
    done = run_cli("encode", str(source), "--preset", str(media / "overlay-test.toml"),
                   "-o", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no alpha channel" in lines[0] and "opaque.mov" in lines[0]
    assert "Traceback" not in done.stderr and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_dry_run_prints_both_vp9_passes(media: Path, tmp_path: Path) -> None:
    done = run_cli("encode", str(media / "prores.mov"), "--preset",
                   str(media / "overlay-test.toml"), "-o", str(tmp_path / "pkg"),
                   "--cache-dir", str(tmp_path / "cache"), "--dry-run")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if "libvpx-vp9" in line]
    assert len(commands) == 2
    assert "-pass 1" in commands[0] and "-pass 2" in commands[1]
    assert f"file:{media / 'prores.mov'}" in commands[0]
    assert "yuva420p" in commands[1] and "-cues_to_front 1" in commands[1]
    assert not (tmp_path / "pkg").exists()


def test_alpha_pixel_formats() -> None:
    for fmt in ("yuva420p", "yuva444p12le", "argb", "rgba", "bgra", "gbrap10le", "ya8"):
        assert has_alpha(fmt), fmt
    for fmt in ("yuv420p", "yuv444p10le", "rgb24", "gbrp", "gray"):
        assert not has_alpha(fmt), fmt


def test_overlay_preset_keys_are_checked() -> None:
    assert load_preset("overlay").vp9 is not None
    base = {"video": {"encoder": "libvpx-vp9", "gop_frames": 48}, "vp9": {},
            "rungs": [{"name": "a", "width": 64, "height": 36, "bitrate": "100k",
                       "bufsize": "200k"}]}
    parse_preset(base, name="t", source="t.toml")
    for change, message in [
        ({"video": {**base["video"], "x264_preset": "fast"}}, "is an x264 setting"),
        ({"vp9": None}, "'vp9' is missing"),
        ({"vp9": {"cpu_used": 9}}, "allowed values"),
        ({"audio": {"bitrate": "96k"}}, "overlays carry no audio"),
        ({"video": {**base["video"], "pix_fmt": "yuv420p"}}, "allowed values: yuva420p"),
    ]:
        data = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(PresetError, match=message):
            parse_preset(data, name="t", source="t.toml")
    with pytest.raises(PresetError, match=r"only for video\.encoder"):
        parse_preset({**base, "video": {"gop_frames": 48}}, name="t", source="t.toml")
