"""`discriminator verify CLIP...`: a clip's C2PA manifest, sidecar, hashes and signature."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import err_console, print_json
from discriminator_cli.errors import BadInputError

if TYPE_CHECKING:
    from discriminator_cli.provenance.verify import ClipVerification


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    clips: Annotated[list[Path], typer.Argument(help="Clips (MP4) to check.")],
    trust: Annotated[Path | None, typer.Option(help="PEM file of CA certificates to trust "
                                               "(e.g. a local identity's ca.pem).")] = None,
    inputs: Annotated[list[Path] | None, typer.Option(help="A folder to look for the face, "
                                                      "narration and checkpoint in, by file "
                                                      "name (repeatable).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Check a clip's signed provenance: what it is, from which inputs, and that nothing
    changed (exit 1 for a clip with no manifest or a tampered one)."""
    from discriminator_cli.provenance import provenance_imports

    with provenance_imports("discriminator verify"):
        from discriminator_cli.provenance.verify import verify_clip

    for clip in clips:  # every path first: no half a report for a typo in the last one
        if not clip.is_file():
            raise BadInputError("clip not found", path=clip, hint="check the path")
    reports = [verify_clip(clip, trust_anchors=trust, search=inputs or []) for clip in clips]
    if json_output:
        print_json({"ok": all(r.ok for r in reports), "clips": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            _print_report(report)
    for report in reports:
        for check in report.failures():
            # c2pa's explanations may hold [brackets]: not rich markup
            err_console.print(f"[red]error:[/red] {escape(f'{report.clip}: {check.name}: ')}"
                              f"{escape(check.detail)}", soft_wrap=True)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _short(sha256: str) -> str:
    return f"{sha256[:12]}…" if sha256 else "none"


def _print_report(report: ClipVerification) -> None:
    summary = report.summary
    if summary is None:
        print(f"{report.clip}: FAILED — no readable C2PA manifest")
        return
    verdict = "ok" if report.ok else "FAILED"
    what = "synthetic" if summary.synthetic else "not declared synthetic"
    kind = (summary.digital_source_type or "no digital source type").rsplit("/", 1)[-1]
    print(f"{report.clip}: {verdict} — {what} ({kind}), made by {summary.generator}")
    if summary.model is not None:
        model = summary.model
        print(f"  model: {model.name}, {model.precision} on {model.device}, checkpoint "
              f"{model.checkpoint} (sha256 {_short(model.checkpoint_sha256)})")
    if summary.inputs:
        print("  inputs: " + ", ".join(f"{i.role} {i.title} (sha256 {_short(i.sha256)})"
                                       for i in summary.inputs))
    signer = summary.signer
    print(f"  signed by: {signer.get('common_name', '?')} (issuer {signer.get('issuer', '?')}, "
          f"{signer.get('alg', '?')}) — {'trusted' if report.trusted else 'untrusted'}")
    print("  checks: " + ", ".join(f"{c.name} {c.status}" for c in report.checks))
