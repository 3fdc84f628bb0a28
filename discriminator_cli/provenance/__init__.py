"""Signed provenance: a C2PA manifest embedded in every clip the toolkit generates.

- `identity`: the signing certificate chain + key (the user's, from options or the config file,
  else a local CA + signing key made once in the user's config directory, reported untrusted).
- `manifest`: what the manifest says (a `c2pa.created` action with the IPTC digital source type
  for a composite with trained algorithmic media, the tool and model, the photo and narration as
  ingredients by hash) and how it is read back.
- `sign`: embeds the manifest into a staged MP4 before it is published.
- `verify`: reads a clip's manifest and sidecar and checks every hash and the signature.

Everything here needs the `provenance` extra (c2pa-python, cryptography), which the `lipsync`
extra pulls in: a clip is never published unsigned. Import these modules inside
`provenance_imports()` so that a missing extra becomes a MissingExtraError with the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from discriminator_cli.errors import MissingExtraError

EXTRA_HINT = "pip install 'discriminator-cli[provenance]' (the lipsync extra includes it)"


@contextlib.contextmanager
def provenance_imports(what: str) -> Iterator[None]:
    """`with provenance_imports("discriminator verify"): from ... import ...`."""
    try:
        yield
    except ImportError as exc:
        name = exc.name or str(exc)
        raise MissingExtraError(f"{what} needs the provenance extra ({name} is not installed)",
                                hint=EXTRA_HINT) from exc
