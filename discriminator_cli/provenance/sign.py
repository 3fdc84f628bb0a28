"""Embed a signed C2PA manifest into a staged MP4, before it is published.

`sign_clip` rewrites the staged file in place (signed copy beside it, then os.replace), reads
the result back and refuses to hand over a clip whose manifest does not validate, so the
publish-by-rename that follows only ever publishes a signed clip.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import c2pa

from discriminator_cli.cache import file_sha256
from discriminator_cli.errors import ToolFailedError
from discriminator_cli.provenance.identity import SigningIdentity, resolve_identity
from discriminator_cli.provenance.manifest import (
    OCTET_STREAM,
    ClipFacts,
    InputRecord,
    ModelRecord,
    ingredient_definition,
    input_format,
    manifest_definition,
)

if TYPE_CHECKING:
    from discriminator_cli.lipsync.pipeline import ClipResult, EngineFacts

MP4 = "video/mp4"
# No ingredient thumbnails: the face is already in every frame of the clip, and a manifest that
# carries a second copy of a viewer's photo would outlive a crop or redaction of the clip.
_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


def sign_lipsync_clip(staged: Path, result: ClipResult, engine: EngineFacts,
                      identity: SigningIdentity | None = None) -> dict[str, Any]:
    """The pipeline's one call: sign the staged clip of `result`; returns the sidecar record."""
    model = ModelRecord(name="Wav2Lip", checkpoint=Path(engine.checkpoint_path).name,
                        checkpoint_sha256=engine.checkpoint_sha256,
                        precision=engine.precision, device=str(engine.device))
    sources = {"face": result.face, "narration": result.audio}
    facts = ClipFacts(title=result.output.name, kind=result.kind, frames=result.frames,
                      fps=result.fps, width=result.width, height=result.height, model=model,
                      inputs=tuple(InputRecord(role=role, title=path.name,
                                               sha256=file_sha256(path),
                                               format=input_format(path.name))
                                   for role, path in sources.items()))
    return sign_clip(staged, facts, sources, identity or resolve_identity())


def sign_clip(clip: Path, facts: ClipFacts, sources: dict[str, Path],
              identity: SigningIdentity) -> dict[str, Any]:
    """Sign `clip` (an MP4) in place with a manifest built from `facts`.

    sources: the input files by role, read by c2pa as the ingredients (an input that carries
    its own C2PA manifest, e.g. a signed photo, joins the provenance chain).
    """
    context = c2pa.Context.from_dict(_SETTINGS)
    fd, tmp = tempfile.mkstemp(prefix=".signing-", suffix=".mp4", dir=clip.parent)
    os.close(fd)
    signed = Path(tmp)
    try:
        with c2pa.Builder(manifest_definition(facts), context=context) as builder:
            for item in facts.inputs:
                _add_ingredient(builder, item, sources[item.role])
            with open(clip, "rb") as source, open(signed, "w+b") as dest:
                builder.sign(identity.signer(), MP4, source, dest)
        record = _read_back(signed, clip)
        os.replace(signed, clip)
    except c2pa.C2paError as exc:
        raise ToolFailedError(f"c2pa could not sign the clip ({exc})", argv=["c2pa", "sign"],
                              returncode=1, path=clip,
                              hint="nothing was published; run again with --debug") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            signed.unlink()
    record["identity"] = identity.as_dict()
    return record


def _add_ingredient(builder: c2pa.Builder, record: InputRecord, path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            builder.add_ingredient(ingredient_definition(record), record.format, handle)
    except c2pa.C2paError:
        if record.format == OCTET_STREAM:
            raise
        # A file whose content is not what its name says (a JPEG named .png): c2pa's parser
        # fails on it, but it is still the input, recorded by its hash.
        with open(path, "rb") as handle:
            builder.add_ingredient(ingredient_definition(record, OCTET_STREAM), OCTET_STREAM,
                                   handle)


def _read_back(signed: Path, clip: Path) -> dict[str, Any]:
    """The manifest as a reader sees it; a clip whose manifest does not validate is refused."""
    with open(signed, "rb") as handle, c2pa.Reader(MP4, handle) as reader:
        state = reader.get_validation_state()
        store = json.loads(reader.json())
    if state not in ("Valid", "Trusted"):
        failures = [s.get("code") for s in store.get("validation_status", [])]
        raise ToolFailedError(f"the freshly signed clip does not validate ({state}: "
                              f"{', '.join(map(str, failures))})", argv=["c2pa", "read"],
                              returncode=1, path=clip, hint="nothing was published")
    return {"c2pa_manifest": store.get("active_manifest"), "validation_state": state}
