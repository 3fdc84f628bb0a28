"""Entry points: find the manifests under the given paths, check each, then DASH vs HLS."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from discriminator_cli.errors import BadInputError
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME
from discriminator_cli.publish import STAGING_PREFIX
from discriminator_cli.validate.captions import check_captions
from discriminator_cli.validate.cross import check_cross
from discriminator_cli.validate.dash import DashManifest, check_mpd
from discriminator_cli.validate.h264 import HrdParameters
from discriminator_cli.validate.hls import PlaylistCache, check_media_playlist
from discriminator_cli.validate.hls_master import HlsMaster, check_master
from discriminator_cli.validate.hrd import check_hrd
from discriminator_cli.validate.media import MediaCache
from discriminator_cli.validate.poster import check_poster
from discriminator_cli.validate.report import Report

MANIFEST_SUFFIXES = (".mpd", ".m3u8")
# A playlist holding any of these is a master playlist (RFC 8216, 4.3.4).
_MASTER_MARKERS = (b"#EXT-X-STREAM-INF", b"#EXT-X-I-FRAME-STREAM-INF", b"#EXT-X-MEDIA:")


def _is_master_playlist(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)  # masters are small; this bounds a stray huge file
    return any(marker in head for marker in _MASTER_MARKERS)


def find_manifests(paths: Iterable[Path | str]) -> list[Path]:
    """The manifests named by or found under `paths`; BadInputError when none can be used."""
    return [manifest for manifest, _ in _manifests_and_roots(paths)[0]]


def _manifests_and_roots(paths: Iterable[Path | str]) -> tuple[list[tuple[Path, Path]],
                                                                list[Path]]:
    """([(manifest, package root)], [manifests that are symlinks leading outside their root]).

    The root is the directory given, or the folder of a manifest given by name: references
    that leave it are findings (checks.resolve_reference), and a manifest found in a
    directory that is a symlink to somewhere else is never read.
    """
    found: list[tuple[Path, Path]] = []
    outside: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BadInputError("no such file or directory", path=path,
                                hint="give a package directory, an .mpd or an .m3u8")
        if path.is_dir():
            root = path.resolve()
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in MANIFEST_SUFFIXES
                            and not _hidden(p, path) and p.is_file())
            if not inside:
                raise BadInputError("no .mpd or .m3u8 manifest in this directory", path=path,
                                    hint="point at a package made by `discriminator encode`")
            for manifest in inside:
                resolved = manifest.resolve()
                if resolved.is_relative_to(root):
                    found.append((resolved, root))
                else:
                    outside.append(manifest)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            found.append((path.resolve(), path.resolve().parent))
        else:
            raise BadInputError("not a manifest (.mpd or .m3u8) or a package directory",
                                path=path)
    roots: dict[Path, Path] = {}
    for path, root in found:  # named twice (a directory and a file in it): the wider root
        if path not in roots or len(root.parts) < len(roots[path].parts):
            roots[path] = root
    for path in roots:
        if not path.is_file():  # a FIFO or device named *.m3u8 would block or never end
            raise BadInputError("not a regular file", path=path)
        try:
            path.open("rb").close()
        except OSError as exc:
            raise BadInputError(f"cannot read it ({exc.strerror})", path=path) from exc
    return list(roots.items()), outside


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", STAGING_PREFIX)) for part in path.relative_to(root).parts)


def validate_paths(paths: Iterable[Path | str], *,
                   hrd_fallback: Mapping[str, HrdParameters] | None = None) -> Report:
    """Check every manifest under `paths` and the media they reference.

    Master playlists are checked first; media playlists they name are checked through them,
    and the remaining .m3u8 files on their own. An MPD and a master in the same directory are
    then compared with each other. Every video file then goes through the decoder buffer model
    (`hrd_fallback`: HRD settings by file name, for streams whose SPS declares none).
    """
    paths = list(paths)
    found, outside = _manifests_and_roots(paths)
    # Package-level checks only where a folder was given: a playlist named on its own is
    # checked as itself.
    folders_given = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    report = Report()
    for link in outside:
        report.error("file.outside-package", link, "",
                     f"this manifest is a symlink to {link.resolve()}, outside the package; "
                     "a server of the package cannot reach it, and validate does not read it")
    for path, root in found:
        report.set_root(path, root)
    manifests = [path for path, _ in found]
    media = MediaCache()
    playlists = PlaylistCache(report, media)
    dash: list[DashManifest] = []
    masters: list[HlsMaster] = []
    for path in manifests:
        if path.suffix.lower() == ".mpd":
            result = check_mpd(path, report, media)
            if result is not None:
                dash.append(result)
    playlist_paths = [p for p in manifests if p.suffix.lower() == ".m3u8"]
    for path in playlist_paths:
        if _is_master_playlist(path):
            master = check_master(path, report, playlists)
            if master is not None:
                masters.append(master)
    # Subtitle playlists list WebVTT, not fMP4: captions.py checks them.
    checked = playlists.checked() | {r.text_playlist.resolve() for m in masters
                                     for r in m.renditions if r.text_playlist is not None}
    for path in playlist_paths:
        if path not in checked and str(path) not in report.manifests:
            check_media_playlist(path, report, media)
    _check_package_shape([m for m in manifests
                          if any(m.is_relative_to(folder) for folder in folders_given)],
                         masters, checked, report)
    for mpd in dash:
        for master in masters:
            if master.path.parent == mpd.path.parent:
                check_cross(mpd, master, report)
    check_captions(dash, masters, report)
    _check_package_files(dash, report)
    for info in media.analysed():
        check_hrd(report, info, hrd_fallback)
    return report


def _check_package_files(dash: list[DashManifest], report: Report) -> None:
    """Files a package holds beside its manifests: the poster (one per package folder)."""
    for mpd in {m.path.parent: m for m in dash}.values():
        sizes = [(r.width, r.height) for r in mpd.renditions
                 if r.kind == "video" and r.width and r.height]
        check_poster(mpd.path.parent, report, max(sizes, key=lambda s: s[0] * s[1])
                     if sizes else None)


def validate_package(package: Path | str, *,
                     hrd_fallback: Mapping[str, HrdParameters] | None = None) -> Report:
    """What `discriminator encode` runs on each package it publishes; fail on `report.errors`."""
    return validate_paths([package], hrd_fallback=hrd_fallback)


def _check_package_shape(manifests: list[Path], masters: list[HlsMaster], reached: set[Path],
                         report: Report) -> None:
    """What a folder's manifests say together: HLS media playlists no master names (a player
    starts from a master, so they cannot play), and an fMP4 package with only one of the two
    manifests `encode` writes (a deleted stream.mpd or master.m3u8)."""
    folders: dict[Path, list[Path]] = {}
    for path in manifests:
        folders.setdefault(path.parent, []).append(path)
    master_paths = {master.path for master in masters}
    for folder, paths in folders.items():
        mpds = [p for p in paths if p.suffix.lower() == ".mpd"]
        here = [p for p in paths if p in master_paths]
        loose = [p for p in paths if p.suffix.lower() == ".m3u8" and p not in master_paths
                 and p not in reached]
        if loose and not here:
            report.error("hls.master-missing", loose[0], "package",
                         f"{len(loose)} media playlist(s) but no master playlist in this "
                         f"folder: HLS players start from a master ({HLS_MASTER_NAME})")
        for path in loose if here else []:
            report.warning("hls.unreferenced-playlist", path, "package",
                           "no master playlist in this folder names this playlist")
        fmp4 = any(child.suffix.lower() == ".mp4" for child in folder.iterdir())
        if fmp4 and mpds and not here and not loose:
            report.error("package.hls-missing", mpds[0], "package",
                         f"a DASH manifest without {HLS_MASTER_NAME}: an fMP4 package is "
                         "served as both (`encode` writes both); HLS players get nothing")
        if fmp4 and here and not mpds:
            report.error("package.dash-missing", here[0], "package",
                         f"an HLS master without {MPD_NAME}: an fMP4 package is served as "
                         "both (`encode` writes both); DASH players get nothing")
