"""What a package's manifests declare: the video renditions and the audio languages.

The playback check compares this with what each player actually offers, because players
silently drop renditions whose codecs they cannot play.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import m3u8
from lxml import etree

from discriminator_cli.confine import OutsideRoot, confined_path
from discriminator_cli.errors import BadInputError
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME, dash_tag, parse_iso_duration


@dataclass(frozen=True, order=True)
class Rendition:
    height: int
    width: int
    bandwidth: int
    codecs: str = ""


@dataclass
class DeclaredManifest:
    kind: str  # "dash" or "hls"
    path: Path
    renditions: list[Rendition] = field(default_factory=list)
    audio_languages: list[str] = field(default_factory=list)
    duration: float | None = None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _number(text: str) -> int:
    """A declared size or rate; 0 for anything that is not a plausible one (the playback
    check then reports the mismatch instead of crashing on it)."""
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 20 else 0


def read_dash(path: Path) -> DeclaredManifest:
    # The same guarded parser as validate: no DTD, entities or network; libxml2's size limits.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise BadInputError(f"cannot read the MPD: {exc}", path=path) from exc
    declared = DeclaredManifest("dash", path,
                                duration=parse_iso_duration(
                                    root.get("mediaPresentationDuration")))
    for adaptation in root.iter(dash_tag("AdaptationSet")):
        representations = adaptation.findall(dash_tag("Representation"))
        kind = adaptation.get("contentType") or (
            adaptation.get("mimeType") or representations[0].get("mimeType", "")
            if representations else "").split("/")[0]
        if kind == "audio":
            if adaptation.get("lang"):
                declared.audio_languages.append(adaptation.get("lang", ""))
            continue
        if kind != "video":
            continue
        for rep in representations:
            width = rep.get("width") or adaptation.get("width") or "0"
            height = rep.get("height") or adaptation.get("height") or "0"
            codecs = rep.get("codecs") or adaptation.get("codecs") or ""
            declared.renditions.append(Rendition(_number(height), _number(width),
                                                 _number(rep.get("bandwidth", "0")), codecs))
    declared.renditions.sort()
    return declared


def read_hls(path: Path) -> DeclaredManifest:
    try:
        master = m3u8.loads(path.read_text(encoding="utf-8"), uri=str(path))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(f"cannot read the HLS master playlist: {exc}", path=path) from exc
    declared = DeclaredManifest("hls", path)
    for playlist in master.playlists:
        info = playlist.stream_info
        width, height = info.resolution or (0, 0)
        declared.renditions.append(Rendition(int(height), int(width), int(info.bandwidth or 0),
                                             info.codecs or ""))
    for media in master.media:
        if media.type == "AUDIO" and media.language:
            declared.audio_languages.append(media.language)
    declared.renditions.sort()
    if master.playlists:
        try:
            first = confined_path(path.parent, master.playlists[0].uri or "")
        except OutsideRoot as exc:
            raise BadInputError(f"the first variant playlist {exc.reason}", path=path,
                                hint="run `discriminator validate` on the package") from exc
        if first.is_file():
            declared.duration = sum(s.duration or 0.0 for s in m3u8.load(str(first)).segments)
    return declared


def read_declared(package_dir: Path, kind: str) -> DeclaredManifest:
    name = MPD_NAME if kind == "dash" else HLS_MASTER_NAME
    path = package_dir / name
    if not path.is_file():
        raise BadInputError(f"no {name} in the package", path=package_dir,
                            hint="pass a package directory made by `discriminator encode`")
    return read_dash(path) if kind == "dash" else read_hls(path)
