"""Check a clip's provenance: its C2PA manifest, its sidecar, and every hash they hold.

The manifest is the authority (it is signed); the sidecar `CLIP.json` is a convenience copy
that must agree with it. Checks, each `ok`, `failed`, `warning` or `skipped`:
- manifest: present and readable (a clip with none fails: stripped, or never signed);
- signature: the claim signature validates against the certificate in the manifest;
- hard binding: the clip's bytes are the ones signed (c2pa's BMFF/data hash);
- c2pa: any other validation failure c2pa reports;
- trust: the signer chains to a trust anchor (`--trust`) — untrusted is a warning, not a failure;
- clip sha256 and sidecar: the sidecar describes this file, with the manifest's input hashes;
- face, narration, checkpoint: where the file can be found, its sha256 is the manifest's.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa

from discriminator_cli.cache import file_sha256
from discriminator_cli.errors import BadInputError
from discriminator_cli.provenance.manifest import ManifestSummary, summarise

SIDECAR_SUFFIX = ".json"
# c2pa status codes that are about trust or reachability, not about the clip being altered.
_TRUST_CODES = {"signingCredential.untrusted", "signingCredential.trusted"}
_IGNORED_CODES = {"signingCredential.ocsp.skipped", "signingCredential.ocsp.inaccessible",
                  "timeStamp.untrusted"}
_BINDING_PREFIXES = ("assertion.bmffHash", "assertion.dataHash", "assertion.boxesHash",
                     "assertion.collectionHash")
_SIGNATURE_PREFIXES = ("claimSignature", "signingCredential", "timeStamp", "general")
_SIDECAR_ROLES = {"face": "face", "narration": "audio", "checkpoint": "checkpoint"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str          # "ok", "failed", "warning", "skipped"
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class ClipVerification:
    clip: Path
    sidecar: Path | None = None
    validation_state: str | None = None   # c2pa's: Trusted, Valid, Invalid; None: no manifest
    summary: ManifestSummary | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary is not None and all(c.status != "failed" for c in self.checks)

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    def add(self, name: str, status: str, detail: str = "") -> None:
        self.checks.append(Check(name, status, detail))

    def as_dict(self) -> dict[str, Any]:
        return {"clip": str(self.clip), "ok": self.ok, "trusted": self.trusted,
                "sidecar": str(self.sidecar) if self.sidecar else None,
                "validation_state": self.validation_state,
                "manifest": self.summary.as_dict() if self.summary else None,
                "checks": [c.as_dict() for c in self.checks]}


def verify_clip(clip: Path, *, trust_anchors: Path | None = None,
                search: Sequence[Path] = ()) -> ClipVerification:
    """Verify one clip. search: folders where the inputs are looked for by file name (besides
    the paths the sidecar records and the clip's own folder)."""
    if not clip.is_file():
        raise BadInputError("clip not found", path=clip, hint="check the path")
    report = ClipVerification(clip=clip)
    store = _read_manifest(clip, trust_anchors, report)
    if store is None:
        return report
    report.summary = summarise(store)
    _check_validation(store, report)
    sidecar = _load_sidecar(clip, report)
    _check_inputs(clip, report.summary, sidecar, search, report)
    return report


def trust_context(trust_anchors: Path) -> c2pa.Context:
    if not trust_anchors.is_file():
        raise BadInputError("trust anchors file not found", path=trust_anchors,
                            hint="give a PEM file of CA certificates (e.g. the local "
                                 "identity's ca.pem)")
    pem = trust_anchors.read_text(encoding="utf-8", errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise BadInputError("not a PEM certificate file", path=trust_anchors,
                            hint="give CA certificates in PEM form")
    return c2pa.Context.from_dict({"verify": {"verify_trust": True},
                                   "trust": {"trust_anchors": pem}})


def _read_manifest(clip: Path, trust_anchors: Path | None,
                   report: ClipVerification) -> dict[str, Any] | None:
    context = trust_context(trust_anchors) if trust_anchors else None
    try:
        with open(clip, "rb") as handle, \
                c2pa.Reader(mimetypes.guess_type(clip.name)[0], handle,
                            context=context) as reader:
            report.validation_state = reader.get_validation_state()
            return dict(json.loads(reader.json()))
    except c2pa.C2paError as exc:
        if type(exc).__name__.endswith("ManifestNotFound"):
            report.add("manifest", "failed", "no C2PA manifest: it was stripped, or the clip "
                                             "was never signed; its provenance cannot be shown")
        else:
            report.add("manifest", "failed", f"the C2PA manifest cannot be read ({exc})")
        return None


def _codes(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(e.get("code")), str(e.get("explanation", ""))) for e in entries]


def _check_validation(store: dict[str, Any], report: ClipVerification) -> None:
    results = store.get("validation_results", {}).get("activeManifest", {})
    success = {code for code, _ in _codes(results.get("success", []))}
    failures = [(c, e) for c, e in _codes(results.get("failure", []))
                if c not in _IGNORED_CODES]
    for delta in store.get("validation_results", {}).get("ingredientDeltas", []):
        failures += _codes(delta.get("validationDeltas", {}).get("failure", []))
    report.add("manifest", "ok", report.summary.label if report.summary else "")

    binding = [(c, e) for c, e in failures if c.startswith(_BINDING_PREFIXES)]
    signature = [(c, e) for c, e in failures
                 if c.startswith(_SIGNATURE_PREFIXES) and c not in _TRUST_CODES]
    others = [(c, e) for c, e in failures
              if (c, e) not in binding and (c, e) not in signature and c not in _TRUST_CODES]

    if signature:
        report.add("signature", "failed", _join(signature))
    elif "claimSignature.validated" in success:
        report.add("signature", "ok", f"{report.summary.signer.get('alg', '?')}"
                   if report.summary else "")
    else:
        report.add("signature", "failed", "c2pa did not validate the claim signature")

    if binding:
        report.add("hard binding", "failed",
                   f"the clip's bytes changed after it was signed ({_join(binding)})")
    elif any(code.startswith(_BINDING_PREFIXES) and code.endswith(".match")
             for code in success):
        report.add("hard binding", "ok")
    else:
        report.add("hard binding", "failed", "the manifest binds no hash of the clip's bytes")
    if others:
        report.add("c2pa", "failed", _join(others))

    signer = report.summary.signer if report.summary else {}
    who = f"{signer.get('common_name', '?')} (issuer {signer.get('issuer', '?')})"
    if "signingCredential.trusted" in success:
        report.add("trust", "ok", f"signed by {who}, a trusted certificate")
    else:
        report.add("trust", "warning", f"signed by {who}, not a trusted certificate "
                                       "(pass --trust CA.pem to trust its CA)")


def _join(codes: list[tuple[str, str]]) -> str:
    return "; ".join(f"{code}: {text}" if text else code for code, text in codes)


def _load_sidecar(clip: Path, report: ClipVerification) -> dict[str, Any] | None:
    path = clip.with_name(clip.name + SIDECAR_SUFFIX)
    if not path.is_file():
        report.add("sidecar", "skipped", f"no {path.name}")
        return None
    report.sidecar = path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recorded = data["output"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.add("sidecar", "failed", f"{path.name} is not a discriminator sidecar ({exc})")
        return None
    actual = file_sha256(clip)
    if recorded == actual:
        report.add("clip sha256", "ok", actual)
    else:
        report.add("clip sha256", "failed", f"the clip's sha256 {actual[:12]}… is not the "
                                            f"{recorded[:12]}… in {path.name}: the clip "
                                            "changed, or the sidecar is another clip's")
    return dict(data)


def _check_inputs(clip: Path, summary: ManifestSummary, sidecar: dict[str, Any] | None,
                  search: Sequence[Path], report: ClipVerification) -> None:
    expected = {i.role: (i.title, i.sha256) for i in summary.inputs}
    if summary.model is not None:
        expected["checkpoint"] = (summary.model.checkpoint, summary.model.checkpoint_sha256)
    recorded = (sidecar or {}).get("inputs", {})
    mismatched = [role for role, (_, sha) in expected.items()
                  if recorded and recorded.get(_SIDECAR_ROLES.get(role, role), {}).get("sha256")
                  not in (None, sha)]
    if sidecar is not None:
        if mismatched:
            report.add("sidecar", "failed", f"{', '.join(mismatched)} sha256 in the sidecar "
                                            "differs from the signed manifest's")
        elif sidecar.get("synthetic") is not True:
            report.add("sidecar", "failed", "the sidecar does not say the clip is synthetic")
        else:
            report.add("sidecar", "ok", "agrees with the manifest")
    for role, (title, sha256) in expected.items():
        if not sha256:  # an ingredient another tool recorded without our hash
            report.add(role, "skipped", f"the manifest records no sha256 for {title}")
            continue
        found = _find_input(clip, title, recorded.get(_SIDECAR_ROLES.get(role, role), {}),
                            search)
        if found is None:
            report.add(role, "skipped", f"{title} not found (sha256 {sha256[:12]}… unchecked)")
        elif file_sha256(found) == sha256:
            report.add(role, "ok", f"{found} matches")
        else:
            report.add(role, "failed", f"{found} is not the {title} the clip was made from "
                                       "(its sha256 differs from the manifest's)")


def _find_input(clip: Path, title: str, recorded: dict[str, Any],
                search: Sequence[Path]) -> Path | None:
    candidates: list[Path] = []
    if recorded.get("file"):
        path = Path(recorded["file"])
        candidates += [path] if path.is_absolute() else [path, clip.parent / path]
    candidates += [folder / title for folder in search] + [clip.parent / title]
    return next((c for c in candidates if c.name == title and c.is_file()), None)
