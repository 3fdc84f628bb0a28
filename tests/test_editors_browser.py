"""The editors' features in real Chromium (marked `browser`): each of dash.js, shaka-player and
hls.js lists the caption tracks with their languages and shows the expected cue at a given
time; the overlay's progressive WebM drawn on a canvas over a coloured background shows the
background where the source was transparent, and so do the DASH players (MSE) playing the
overlay package in this Chromium."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from discriminator_cli.preview.players import find_chromium, find_node, find_node_modules
from discriminator_cli.preview.server import PreviewServer
from discriminator_cli.tools import find_bento4
from tests.editors_media import encode_json, tiny_source
from tests.test_overlay import PRESET, alpha_source

DRIVER = Path(__file__).with_name("editors_browser.mjs")
VTT_EN = ("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nGood evening\n\n"
          "00:00:02.400 --> 00:00:03.600\nThe second cue\n")
SRT_FR = ("1\n00:00:00,500 --> 00:00:01,500\nBonsoir\n\n"
          "2\n00:00:02,400 --> 00:00:03,600\nLe deuxième sous-titre\n")
BACKGROUND = (0, 255, 0)          # what must show through where the overlay is transparent
OVERLAY_COLOUR = (0x30, 0x60, 0xC0)  # the disc's colour in tests.test_overlay's source
AT = 1.0                          # the disc is centred at x = 80 + 30 sin(2 t), y = 45


def _missing() -> str | None:
    if find_chromium() is None:
        return "chromium not found (apt-get install chromium)"
    if find_node() is None:
        return "node not found"
    modules = find_node_modules()
    if modules is None or not (modules / "playwright-core").is_dir():
        return "player libraries / playwright-core not installed (run `npm ci`)"
    return None


pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def drive(package: Path, job: dict[str, Any]) -> dict[str, Any]:
    modules = find_node_modules()
    assert modules is not None
    with PreviewServer(package, modules, port=0) as server:
        full = {"baseUrl": server.base_url, "chromium": str(find_chromium()),
                "nodeModules": str(modules), "timeoutMs": 20_000, **job}
        done = subprocess.run([str(find_node()), str(DRIVER), json.dumps(full)],
                              capture_output=True, text=True, timeout=180)
    assert done.stdout, done.stderr
    output = json.loads(done.stdout)
    assert output["fatal"] is None, output["fatal"]
    return output


@pytest.fixture(scope="module", params=["shaka", pytest.param("bento4", marks=pytest.mark.bento4)])
def caption_package(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s package with English (WebVTT) and French (SRT) captions, by each packager."""
    if request.param == "bento4" and find_bento4() is None:
        pytest.skip("Bento4 not installed")
    root = tmp_path_factory.mktemp(f"captions-browser-{request.param}")
    source = tiny_source(root / "clip.mov", seconds=6.0, size="320x180")
    (root / "en.vtt").write_text(VTT_EN)
    (root / "fr.srt").write_text(SRT_FR)
    encode_json(str(source), "--preset", "small", "-o", str(root / "pkg"), "--packager",
                request.param, "--subtitles", f"eng={root / 'en.vtt'}",
                "--subtitles", f"fra={root / 'fr.srt'}")
    return root / "pkg"


def test_every_player_lists_the_captions_and_shows_the_cue(caption_package: Path) -> None:
    """Per player: both languages listed; each selected in turn shows its second cue at 2.8 s,
    timed as written (2.4-3.6 s: the HLS segments' X-TIMESTAMP-MAP puts them there)."""
    expected = {"en": "The second cue", "fr": "Le deuxième sous-titre"}
    output = drive(caption_package, {"mode": "captions", "players": ["dashjs", "shaka", "hlsjs"],
                                     "captions": [{"language": lang, "at": 2.8}
                                                  for lang in expected]})
    assert [r["player"] for r in output["results"]] == ["dashjs", "shaka", "hlsjs"]
    for result in output["results"]:
        assert result.get("ready"), result
        languages = sorted(t["language"].split("-")[0] for t in result["textTracks"])
        assert languages == ["en", "fr"], result
        for check in result["checks"]:
            cue = expected[check["language"]]
            assert check["cues"] == [cue], (result["player"], check)
            assert 2.4 <= check["currentTime"] <= 3.6, (result["player"], check)
            timed = [c for track in check["showing"] for c in track["cues"] or []
                     if c[2] == cue]
            assert len(timed) == 1, (result["player"], check)
            assert abs(timed[0][0] - 2.4) < 0.01 and abs(timed[0][1] - 3.6) < 0.01, timed


@pytest.fixture(scope="module")
def overlay_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overlay-browser")
    (root / "overlay-test.toml").write_text(PRESET)
    source = alpha_source(root / "prores.mov", ["-c:v", "prores_ks", "-profile:v", "4444"],
                          "yuva444p10le")
    encode_json(str(source), "--preset", str(root / "overlay-test.toml"), "-o",
                str(root / "pkg"))
    return root / "pkg"


def _close(pixel: list[int], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def test_alpha_over_a_canvas_background_progressive_and_mse(overlay_package: Path) -> None:
    """A corner (transparent in the source) must show the background; the disc's centre (opaque)
    the overlay's colour. Progressive WebM and both DASH players (MSE) are checked: this
    Chromium keeps the alpha plane through MSE too."""
    import math

    centre = (round(80 + 30 * math.sin(2 * AT)), 45)
    output = drive(overlay_package, {
        "mode": "alpha", "players": ["progressive", "dashjs", "shaka"],
        "alpha": {"at": AT, "background": list(BACKGROUND), "points": [[4, 4], list(centre)],
                  "progressive": "/media/overlay_top.webm"}})
    assert [r["player"] for r in output["results"]] == ["progressive", "dashjs", "shaka"]
    for result in output["results"]:
        assert result.get("width") == 160, result
        transparent, opaque = result["pixels"]
        assert _close(transparent, BACKGROUND), (result["player"], transparent)
        assert _close(opaque, OVERLAY_COLOUR), (result["player"], opaque)
