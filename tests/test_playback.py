"""Real players in real Chromium: dash.js, shaka-player and hls.js play each `encode` package.

The browser tests are marked `browser` (`pytest -m browser`) and skip, saying why, when Debian's
chromium, Node.js or the npm packages (`npm ci`) are missing. The judge tests at the bottom
need no browser: they feed synthetic observations to the verdict logic.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discriminator_cli.preview.declared import DeclaredManifest, Rendition, read_declared
from discriminator_cli.preview.playback import (
    DEFAULT_PLAYERS,
    PlaybackReport,
    check_playback,
    judge,
)
from discriminator_cli.preview.players import find_chromium, find_node, find_node_modules
from discriminator_cli.preview.server import RequestRecord

EXPECTED_LANGUAGE = "en"  # the fixtures encode with language eng; manifests carry BCP 47 "en"


def _browser_missing() -> str | None:
    if find_chromium() is None:
        return "chromium not found (apt-get install chromium)"
    if find_node() is None:
        return "node not found"
    node_modules = find_node_modules()
    if node_modules is None or not (node_modules / "playwright-core").is_dir():
        return "player libraries / playwright-core not installed (run `npm ci`)"
    return None


browser = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")

_reports: dict[str, PlaybackReport] = {}


def _report_for(name: str, package: Path) -> PlaybackReport:
    """One browser run per package (three players, ~30 s), shared by the tests below."""
    if name not in _reports:
        _reports[name] = check_playback(package, DEFAULT_PLAYERS,
                                        expected_language=EXPECTED_LANGUAGE)
    return _reports[name]


@pytest.fixture(params=["shaka", "bento4", "chunked"])
def played(request: pytest.FixtureRequest) -> tuple[Path, PlaybackReport]:
    package = request.getfixturevalue(f"{request.param}_package")
    return package, _report_for(request.param, package)


@pytest.mark.browser
@browser
def test_every_player_plays_the_package(played: tuple[Path, PlaybackReport]) -> None:
    _, report = played
    assert [p.player for p in report.players] == list(DEFAULT_PLAYERS)
    assert report.ok, "\n".join(report.failures())


@pytest.mark.browser
@browser
def test_players_offer_and_decode_every_declared_rendition(
        played: tuple[Path, PlaybackReport]) -> None:
    package, report = played
    for result in report.players:
        declared = read_declared(package, result.manifest)
        assert len(declared.renditions) >= 2
        heights = sorted(r.height for r in declared.renditions)
        assert sorted(o["height"] for o in result.offered) == heights, result.player
        # Forced one by one, each rendition reached the video element at its declared size.
        assert sorted(c["videoHeight"] for c in result.renditions) == heights, result.player
        assert all(c["ok"] and c["videoWidth"] == c["width"] for c in result.renditions)


@pytest.mark.browser
@browser
def test_audio_language_played_seconds_and_clean_request_log(
        played: tuple[Path, PlaybackReport]) -> None:
    _, report = played
    for result in report.players:
        assert result.audio_language == EXPECTED_LANGUAGE, result.player
        assert result.played_seconds >= 4.0, result.player
        assert result.bad_requests == [], result.player
        # On-demand DASH and byte-range HLS: the media arrives as 206 responses.
        assert result.partial_responses > 0, result.player


@pytest.mark.browser
@browser
def test_a_truncated_media_file_fails_the_check(shaka_package: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(shaka_package, broken)
    declared = read_declared(broken, "dash")
    top = max(declared.renditions, key=lambda r: r.height)
    media = _media_file_for(broken, top)
    media.write_bytes(media.read_bytes()[: media.stat().st_size * 6 // 10])

    report = check_playback(broken, ("dashjs", "hlsjs"), expected_language=EXPECTED_LANGUAGE,
                            step_timeout=10.0)
    assert not report.ok
    for result in report.players:
        assert not result.ok, result.player
        # The players may "play" regardless (dash.js retries quietly), but the server saw the
        # requests past the end of the file.
        assert any(r["status"] == 416 and r["path"].endswith(media.name)
                   for r in result.bad_requests), result.failures


def _media_file_for(package: Path, rendition: Rendition) -> Path:
    """The media file the MPD names for this rendition (its BaseURL)."""
    from lxml import etree

    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    root = etree.parse(str(package / "stream.mpd")).getroot()
    for rep in root.iterfind(".//d:Representation", ns):
        if rep.get("height") == str(rendition.height) and \
                rep.get("bandwidth") == str(rendition.bandwidth):
            return package / rep.findtext("d:BaseURL", namespaces=ns).strip()
    raise AssertionError(f"no Representation for {rendition}")


# --- the verdict logic, without a browser ------------------------------------------------

DECLARED = DeclaredManifest("dash", Path("stream.mpd"),
                            renditions=[Rendition(180, 320, 300_000), Rendition(360, 640, 800_000)],
                            audio_languages=["en"], duration=8.0)


def _observed(**overrides: object) -> dict[str, object]:
    offered = [{"index": 0, "id": "0", "width": 320, "height": 180, "bandwidth": 300_000},
               {"index": 1, "id": "1", "width": 640, "height": 360, "bandwidth": 800_000}]
    observed: dict[str, object] = {
        "player": "dashjs", "startedAt": 100.0, "endedAt": 200.0, "pageErrors": [],
        "steps": [{"name": n, "ok": True, "seconds": 1.0, "detail": None}
                  for n in ("load", "play", "rendition 0", "rendition 1", "seek to middle")],
        "offered": offered,
        "renditionChecks": [{**o, "ok": True, "videoWidth": o["width"],
                             "videoHeight": o["height"]} for o in offered],
        "final": {"audioTracks": [{"index": 0, "language": "en", "label": ""}],
                  "activeAudio": 0, "errors": [], "stats": {"played": 5.2}},
    }
    observed.update(overrides)
    return observed


def _log(*statuses: tuple[int, float]) -> list[RequestRecord]:
    return [RequestRecord("GET", "/media/v.mp4", "bytes=0-9", status, 10, at, 0.0)
            for status, at in statuses]


def _verdict(observed: dict[str, object], log: list[RequestRecord] | None = None) -> list[str]:
    return judge(observed, DECLARED, log or _log((206, 150.0)), play_seconds=4.0,
                 expected_language="en").failures


def test_judge_passes_a_clean_run() -> None:
    assert _verdict(_observed()) == []


def test_judge_fails_a_dropped_rendition() -> None:
    observed = _observed()
    observed["offered"] = observed["offered"][:1]  # type: ignore[index]
    assert any("offers renditions" in f for f in _verdict(observed))


def test_judge_fails_a_4xx_during_the_run_only() -> None:
    assert any("416" in f for f in _verdict(_observed(), _log((206, 150.0), (416, 160.0))))
    assert _verdict(_observed(), _log((206, 150.0), (404, 250.0))) == []  # another player's


def test_judge_fails_wrong_language_failed_step_and_fatal_errors() -> None:
    final = {"audioTracks": [{"index": 0, "language": "fr", "label": ""}], "activeAudio": 0,
             "errors": [{"source": "shaka-player", "fatal": True, "detail": "3016"}],
             "stats": {"played": 5.0}}
    steps = [{"name": "load", "ok": True, "seconds": 1.0},
             {"name": "seek to middle", "ok": False, "seconds": 9.0, "detail": "stalled"}]
    failures = _verdict(_observed(final=final, steps=steps))
    assert any("audio language 'fr'" in f for f in failures)
    assert any("seek to middle" in f for f in failures)
    assert any("3016" in f for f in failures)


def test_judge_fails_a_rendition_decoded_at_the_wrong_height() -> None:
    observed = _observed()
    observed["renditionChecks"][1]["videoHeight"] = 180  # type: ignore[index]
    assert any("decoded at height 180" in f for f in _verdict(observed))
