"""Fast tests of the pure pieces the integration tests reach only through real encodes:
ladder planning, the pass argv, both packagers' argv, the HLS peak and manifest reading."""

from __future__ import annotations

import shlex
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from discriminator_cli.bitrate import Segment, average_bitrate, peak_bitrate
from discriminator_cli.encode.hls_fixes import declare_measured_peaks, playlist_peak
from discriminator_cli.encode.ladder import fit_inside, plan_ladder
from discriminator_cli.encode.packaging import (
    PackageInput,
    bento4_dash_argv,
    bento4_fragment_argv,
    shaka_argv,
)
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.x264 import (
    SPILL_LIMIT_BYTES,
    AudioJob,
    RungJob,
    build_pass_argv,
    spill_bytes,
    with_spill,
    x264_params,
)
from discriminator_cli.package_layout import parse_iso_duration
from discriminator_cli.preview.declared import read_dash, read_hls
from discriminator_cli.probe import AudioStream, SourceInfo
from discriminator_cli.tools import Bento4

DOCUMENTARY = load_preset("documentary")


def source(width: int = 1920, height: int = 1080, *, vfr: bool = False,
           path: str = "raw/take.mov") -> SourceInfo:
    return SourceInfo(path=path, size_bytes=1, duration=10.0, width=width, height=height,
                      coded_width=width, coded_height=height, rotation=0,
                      frame_rate=Fraction(25), variable_frame_rate=vfr, video_codec="prores",
                      pix_fmt="yuv422p10le", frame_count=250,
                      audio=(AudioStream(1, 0, "pcm_s16le", 2, 48000, None),))


# --- ladder ---------------------------------------------------------------------------------

def test_full_ladder_for_a_1080p_source() -> None:
    plan = plan_ladder(source(), DOCUMENTARY)
    assert [(r.width, r.height, r.bitrate) for r in plan.rungs] == [
        (1920, 1080, 8_000_000), (1280, 720, 5_000_000), (768, 432, 2_500_000)]
    assert plan.dropped == () and plan.gop_frames == 48
    assert plan.segment_seconds == pytest.approx(48 / 25)


def test_never_upscales_and_keeps_the_top_at_the_source_size() -> None:
    plan = plan_ladder(source(1000, 562), DOCUMENTARY)
    top = plan.rungs[0]
    assert (top.width, top.height) == (1000, 562) and top.clamped
    # bitrate in proportion to the pixels of the rung it replaces (720p, 5 Mbit/s)
    assert top.bitrate == round(5_000_000 * 1000 * 562 / (1280 * 720))
    assert plan.dropped == ("1080p",)
    assert all(r.width <= 1000 and r.height <= 562 for r in plan.rungs)


def test_aspect_kept_inside_each_box_with_even_sizes() -> None:
    assert fit_inside(1440, 1080, 1280, 720) == (960, 720)
    assert fit_inside(1081, 1921, 768, 432) == (244, 432)
    plan = plan_ladder(source(1080, 1920), DOCUMENTARY)  # portrait phone video
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in plan.rungs)
    assert plan.rungs[0].height == 1080 and plan.rungs[0].width == 608


# --- pass argv ------------------------------------------------------------------------------

def _jobs(plan, work: Path = Path("/work")):  # type: ignore[no-untyped-def]
    return [RungJob(r, work / f"{r.name}.mp4", work / f"{r.name}-log") for r in plan.rungs]


def test_pass_one_decodes_once_and_splits_into_every_rung() -> None:
    src = source()
    plan = plan_ladder(src, DOCUMENTARY)
    argv = build_pass_argv("ffmpeg", src, plan, DOCUMENTARY.video, DOCUMENTARY.audio,
                           _jobs(plan), [], 1)
    assert argv.count("-i") == 1 and argv[argv.index("-i") + 1] == "file:raw/take.mov"
    graph = argv[argv.index("-filter_complex") + 1]
    # the top rung's frames go to its encoder and to each smaller rung's scaler
    assert graph.count("split=3") == 1 and graph.count("scale=") == 3
    assert "scale=1920:1080:flags=bicubic" in graph and "scale=768:432" in graph
    assert argv.count("-pass") == 3 and argv.count("/dev/null") == 3
    for name in ("1080p", "720p", "432p"):
        assert f"/work/{name}-log" in argv
    params = x264_params(DOCUMENTARY.video, 48)
    assert params == "keyint=48:min-keyint=48:scenecut=-1:nal-hrd=cbr"
    assert argv.count(params) == 3
    assert "-an" in argv and "-c:a" not in argv  # audio rides along with pass 2 only


def test_pass_two_writes_each_rung_and_the_audio_tracks() -> None:
    src = source(vfr=True)
    plan = plan_ladder(src, DOCUMENTARY)
    audio = [AudioJob("eng", Path(src.path), 0, Path("/work/audio_eng.mp4")),
             AudioJob("fra", Path("-fr.wav"), 0, Path("/work/audio_fra.mp4"))]
    argv = build_pass_argv("ffmpeg", src, plan, DOCUMENTARY.video, DOCUMENTARY.audio,
                           _jobs(plan), audio, 2)
    line = shlex.join(argv)
    assert "fps=25/1" in argv[argv.index("-filter_complex") + 1]  # VFR -> constant rate
    assert "file:/work/1080p.mp4" in argv and "file:/work/audio_fra.mp4" in argv
    # a name starting with '-' is a file: URL, never an option
    assert "file:-fr.wav" in argv and " -fr.wav" not in line
    assert "language=eng" in argv and "language=fra" in argv
    maxrates = [argv[i + 1] for i, a in enumerate(argv) if a == "-maxrate"]
    assert maxrates == ["8000000", "5000000", "2500000"]  # maxrate = bitrate (CBR)
    assert argv.count("-profile:v") == 3 and "4.2" in argv and "yuv420p" in argv


def test_single_pass_preset_runs_one_process() -> None:
    preset = replace(DOCUMENTARY, video=replace(DOCUMENTARY.video, two_pass=False))
    src = source()
    plan = plan_ladder(src, preset)
    argv = build_pass_argv("ffmpeg", src, plan, preset.video, preset.audio, _jobs(plan), [],
                           None)
    assert "-pass" not in argv and argv.count("-f") == 3


def test_with_a_spill_the_source_is_decoded_and_scaled_once_for_both_passes() -> None:
    src = source(vfr=True)
    plan = plan_ladder(src, DOCUMENTARY)
    jobs = with_spill(_jobs(plan), 250, "yuv420p", Path("/work"), dry_run=True)
    assert [j.spill for j in jobs] == [Path(f"/work/{n}-frames.nut")
                                       for n in ("1080p", "720p", "432p")]
    audio = [AudioJob("eng", Path(src.path), 0, Path("/work/audio_eng.mp4"))]
    first = build_pass_argv("ffmpeg", src, plan, DOCUMENTARY.video, DOCUMENTARY.audio, jobs,
                            audio, 1)
    graph = first[first.index("-filter_complex") + 1]
    assert first.count("-i") == 1 and graph.count("fps=25/1") == 1
    # 1080p from the source, 720p and 432p from 1080p's 8-bit frames: split=4 with the spill
    assert graph.startswith("[0:v:0]fps=25/1") and graph.count("split=4") == 1
    assert graph.count("split=2") == 2 and graph.count("format=yuv420p") == 3
    assert first.count("rawvideo") == 3 and first.count("nut") == 3
    # encoders are outputs 0..2 in both passes: ffmpeg names pass logs by output index
    assert [first[i + 1] for i, a in enumerate(first) if a == "-f"][:3] == ["null"] * 3
    assert "-c:a" not in first
    second = build_pass_argv("ffmpeg", src, plan, DOCUMENTARY.video, DOCUMENTARY.audio, jobs,
                             audio, 2)
    assert "-filter_complex" not in second and "-ss" not in second
    inputs = [second[i + 1] for i, a in enumerate(second) if a == "-i"]
    assert inputs == ["file:/work/1080p-frames.nut", "file:/work/720p-frames.nut",
                      "file:/work/432p-frames.nut", "file:raw/take.mov"]
    assert second.count("-pass") == 3 and "-c:a" in second and "3:a:0" in second


def test_a_spill_too_big_for_the_limit_decodes_twice() -> None:
    plan = plan_ladder(source(), DOCUMENTARY)
    jobs = _jobs(plan)
    per_frame = spill_bytes(1, jobs, "yuv420p")
    assert per_frame == (1920 * 1080 + 1280 * 720 + 768 * 432) * 3 // 2
    fits = SPILL_LIMIT_BYTES // per_frame
    assert with_spill(jobs, fits, "yuv420p", Path("/w"), dry_run=True)[0].spill is not None
    assert with_spill(jobs, fits + 1, "yuv420p", Path("/w"), dry_run=True) == jobs
    assert with_spill(jobs, 10, "gray12le", Path("/w"), dry_run=True) == jobs


# --- packagers ------------------------------------------------------------------------------

INPUTS = [PackageInput("video", "video_720p", Path("/c/r1.mp4")),
          PackageInput("audio", "audio_eng", Path("/c/a1.mp4"), "eng"),
          PackageInput("audio", "audio_fra", Path("/c/a2.mp4"), "fra")]


def test_shaka_argv_one_gop_segments_languages_and_iframe_playlists() -> None:
    argv = shaka_argv("packager", INPUTS, 1.92)
    assert argv[1] == ("in=/c/r1.mp4,stream=video,output=video_720p.mp4,"
                       "playlist_name=video_720p.m3u8,"
                       "iframe_playlist_name=video_720p_iframe.m3u8")
    assert "lang=en" in argv[2] and "hls_name=English" in argv[2]
    assert "hls_group_id=audio" in argv[3] and "lang=fr" in argv[3]
    assert argv[argv.index("--segment_duration") + 1] == "1.92"
    assert argv[argv.index("--fragment_duration") + 1] == "1.92"
    assert argv[argv.index("--default_language") + 1] == "en"
    assert "stream.mpd" in argv and "master.m3u8" in argv


def test_bento4_argv_on_demand_with_hls_and_languages() -> None:
    tools = Bento4("/b/mp4fragment", "/b/mp4dash", None)
    fragment = bento4_fragment_argv(tools, INPUTS[0], Path("/w/v.frag.mp4"), 1.92)
    assert fragment == ["/b/mp4fragment", "--fragment-duration", "1920", "/c/r1.mp4",
                        "/w/v.frag.mp4"]
    dash = bento4_dash_argv(tools, INPUTS, [Path("/w/v"), Path("/w/a"), Path("/w/b")],
                            Path("/out"))
    assert dash[:3] == ["/b/mp4dash", "--profiles=on-demand", "--hls"]
    assert "--mpd-name=stream.mpd" in dash and "--hls-master-playlist-name=master.m3u8" in dash
    assert dash[-3] == "[+representation_id=video_720p]/w/v"
    assert dash[-2] == "[+representation_id=audio_eng,+language=en,+language_name=English]/w/a"


# --- bit rates and manifests ----------------------------------------------------------------

def test_peak_counts_a_short_last_segment_only_with_its_neighbour() -> None:
    segments = [Segment(250_000, 0.0, 2.0), Segment(250_000, 2.0, 2.0),
                Segment(100_000, 4.0, 0.2)]
    # alone the 0.2 s tail would be 4 Mbit/s; joined to its neighbour it is 1.59 Mbit/s
    assert peak_bitrate(segments, 2.0) == pytest.approx(350_000 * 8 / 2.2)
    assert average_bitrate(segments) == pytest.approx(600_000 * 8 / 4.2)


def _write_hls(folder: Path, sizes: list[int], declared: int) -> Path:
    media = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:2",
             "#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-MAP:URI="v.mp4",BYTERANGE="800@0"']
    offset = 800
    for size in sizes:
        media += ["#EXTINF:2.0,", f"#EXT-X-BYTERANGE:{size}@{offset}", "v.mp4"]
        offset += size
    (folder / "v.m3u8").write_text("\n".join([*media, "#EXT-X-ENDLIST"]) + "\n")
    master = folder / "master.m3u8"
    master.write_text("#EXTM3U\n#EXT-X-VERSION:6\n"
                      f"#EXT-X-STREAM-INF:BANDWIDTH={declared},CODECS=\"avc1.640028\","
                      "RESOLUTION=1280x720\nv.m3u8\n")
    return master


def test_hls_peak_from_byte_ranges_raises_a_low_bandwidth(tmp_path: Path) -> None:
    master = _write_hls(tmp_path, [500_000, 1_000_000, 400_000], declared=1_000_000)
    assert playlist_peak(tmp_path / "v.m3u8") == pytest.approx(4_000_000)
    assert declare_measured_peaks(master) == {"v.m3u8": (1_000_000, 4_000_000)}
    assert "BANDWIDTH=4000000" in master.read_text()
    assert declare_measured_peaks(master) == {}  # already right: left alone


def test_manifest_reading(tmp_path: Path) -> None:
    assert parse_iso_duration("PT1H2M3.5S") == 3723.5
    assert parse_iso_duration("P1DT1S") == 86401.0
    assert parse_iso_duration("PT" + "9" * 5000 + "S") is None
    assert parse_iso_duration("P1Y") is None
    mpd = tmp_path / "stream.mpd"
    mpd.write_text(
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
        'mediaPresentationDuration="PT8S"><Period>'
        '<AdaptationSet contentType="video"><Representation id="v" width="640" height="360" '
        'bandwidth="900000" codecs="avc1.64001e"/></AdaptationSet>'
        '<AdaptationSet contentType="audio" lang="en"><Representation id="a" '
        'bandwidth="128000" codecs="mp4a.40.2"/></AdaptationSet></Period></MPD>')
    dash = read_dash(mpd)
    assert dash.duration == 8.0 and [(r.width, r.height) for r in dash.renditions] == [(640, 360)]
    assert dash.audio_languages == ["en"]
    hls = read_hls(_write_hls(tmp_path, [100_000], declared=500_000))
    assert [(r.width, r.height, r.bandwidth) for r in hls.renditions] == [(1280, 720, 500_000)]


@pytest.mark.parametrize(("avg", "real", "expected"), [
    (Fraction(296, 10), Fraction(30), Fraction(30000, 1001)),   # a phone's 29.97 with drops
    (Fraction(292, 10), Fraction(30), Fraction(30)),            # further off: its own base
    (Fraction(625, 37), Fraction(25), Fraction(25)),            # 25 fps that fell to 12.5
    (Fraction(625, 37), Fraction(90000), Fraction(24000, 1001)),  # a timebase, not a rate
    (Fraction(625, 37), None, Fraction(24000, 1001)),
    (Fraction(96), Fraction(120), Fraction(60)),                # above every standard rate
])
def test_a_variable_rate_source_gets_a_standard_constant_rate(
        avg: Fraction, real: Fraction | None, expected: Fraction) -> None:
    from discriminator_cli.probe import constant_rate_for

    assert constant_rate_for(avg, real) == expected
