"""Package encoded rungs + audio into `stream.mpd` (DASH on-demand) and `master.m3u8` (HLS).

Two backends with the same result layout at the package root: Shaka Packager (bundled) and
Bento4 (mp4fragment + mp4dash, as the documentary's original workflow ran it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from discriminator_cli.encode.captions_hls import segment_subtitles
from discriminator_cli.encode.hls_fixes import declare_master_version, declare_measured_peaks
from discriminator_cli.errors import BadInputError
from discriminator_cli.languages import display_name, two_letter
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import Bento4, find_bento4, packager_path, require_bento4

SUBTITLE_GROUP = "subs"
PackagerName = Literal["shaka", "bento4", "auto"]
BACKENDS: tuple[str, ...] = get_args(PackagerName)


@dataclass(frozen=True)
class PackageInput:
    kind: str               # "video", "audio" or "text"
    name: str               # representation id, e.g. video_1080p, audio_eng, text_fra
    path: Path              # the encoded (non-fragmented) mp4, or a WebVTT file
    language: str | None = None   # ISO 639-2, audio and text


def resolve_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BadInputError(f"unknown packager {name!r}", hint=f"use one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "bento4" if find_bento4() is not None else "shaka"
    if name == "bento4":
        require_bento4()
    return name


def shaka_argv(packager: str, inputs: list[PackageInput], segment_seconds: float) -> list[str]:
    argv = [packager]
    for item in inputs:
        fields = [f"in={item.path}", f"stream={item.kind}", f"output={item.name}.mp4",
                  f"playlist_name={item.name}.m3u8"]
        if item.kind == "video":
            fields.append(f"iframe_playlist_name={item.name}_iframe.m3u8")
        elif item.kind == "text":
            # A sidecar .vtt for DASH; captions_hls then cuts the HLS copy into segments.
            assert item.language
            fields[2] = f"output={item.name}.vtt"
            fields += [f"hls_group_id={SUBTITLE_GROUP}",
                       f"hls_name={display_name(item.language)}",
                       f"lang={two_letter(item.language)}"]
        else:
            assert item.language
            fields += ["hls_group_id=audio", f"hls_name={display_name(item.language)}",
                       f"lang={two_letter(item.language)}"]
        argv.append(",".join(fields))
    languages = [item.language for item in inputs if item.language and item.kind == "audio"]
    seconds = f"{segment_seconds:.6g}"
    # Segments and fragments of exactly one GOP: the default (6 s) would merge GOPs into
    # longer segments and understate the peak BANDWIDTH.
    argv += ["--segment_duration", seconds, "--fragment_duration", seconds,
             "--mpd_output", MPD_NAME, "--hls_master_playlist_output", HLS_MASTER_NAME,
             "--hls_playlist_type", "VOD", "--quiet"]
    if languages:
        # The main (first) language becomes DEFAULT=YES in HLS and Role main in DASH.
        argv += ["--default_language", two_letter(languages[0])]
    return argv


def package_shaka(inputs: list[PackageInput], out_dir: Path, segment_seconds: float,
                  runner: CommandRunner) -> None:
    runner.run(shaka_argv(packager_path(), inputs, segment_seconds), what="Shaka Packager",
               cwd=out_dir,
               hint="run with --debug to see the packager's full output")
    if not runner.dry_run:
        declare_master_version(out_dir / HLS_MASTER_NAME)


def bento4_fragment_argv(tools: Bento4, item: PackageInput, fragmented: Path,
                         segment_seconds: float) -> list[str]:
    return [tools.mp4fragment, "--fragment-duration", str(round(segment_seconds * 1000)),
            str(item.path), str(fragmented)]


def bento4_dash_argv(tools: Bento4, inputs: list[PackageInput], fragmented: list[Path],
                     out_dir: Path) -> list[str]:
    argv = [tools.mp4dash, "--profiles=on-demand", "--hls", f"--mpd-name={MPD_NAME}",
            f"--hls-master-playlist-name={HLS_MASTER_NAME}", "--force", "-o", str(out_dir)]
    if any(item.kind == "text" for item in inputs):
        argv.insert(1, "--subtitles")
    for item, path in zip(inputs, fragmented, strict=True):
        if item.kind == "text":
            # Sidecar WebVTT: mp4dash copies it to subtitles/<lang>/ for both manifests.
            assert item.language
            argv.append(f"[+format=webvtt,+language={two_letter(item.language)},"
                        f"+language_name={display_name(item.language)}]{path}")
            continue
        selectors = [f"+representation_id={item.name}"]
        if item.language:
            selectors += [f"+language={two_letter(item.language)}",
                          f"+language_name={display_name(item.language)}"]
        argv.append(f"[{','.join(selectors)}]{path}")
    return argv


def package_bento4(inputs: list[PackageInput], out_dir: Path, work_dir: Path,
                   segment_seconds: float, runner: CommandRunner) -> None:
    tools = require_bento4()
    fragmented = []
    for item in inputs:
        if item.kind == "text":
            fragmented.append(item.path)
            continue
        target = work_dir / f"{item.name}.frag.mp4"
        runner.run(bento4_fragment_argv(tools, item, target, segment_seconds),
                   what="mp4fragment", path=item.path)
        fragmented.append(target)
    runner.run(bento4_dash_argv(tools, inputs, fragmented, out_dir), what="mp4dash",
               hint="run with --debug to see mp4dash's full output")


def package(backend: str, inputs: list[PackageInput], out_dir: Path, work_dir: Path,
            segment_seconds: float, runner: CommandRunner) -> None:
    if backend == "bento4":
        package_bento4(inputs, out_dir, work_dir, segment_seconds, runner)
    else:
        package_shaka(inputs, out_dir, segment_seconds, runner)
    if not runner.dry_run:
        declare_measured_peaks(out_dir / HLS_MASTER_NAME)
        segment_subtitles(out_dir, segment_seconds)
