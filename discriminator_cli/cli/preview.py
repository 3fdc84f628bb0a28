"""`discriminator preview media/NAME`: serve a package to real players, or check that they play."""

from __future__ import annotations

import ipaddress
import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import (
    err_console,
    error,
    info,
    out_console,
    plain,
    print_json,
    warn,
)
from discriminator_cli.errors import BadInputError, ValidationFailedError
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME
from discriminator_cli.preview.playback import DEFAULT_PLAYERS, PlaybackReport, check_playback
from discriminator_cli.preview.players import NPM_HINT, find_node_modules
from discriminator_cli.preview.server import DEFAULT_HOST, DEFAULT_PORT, PreviewServer


def register(app: typer.Typer) -> None:
    app.command("preview")(preview)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def preview(
    package: Annotated[Path, typer.Argument(help="A package directory, e.g. media/NAME.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")]
    = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback "
                                      "exposes the package to the network.")] = DEFAULT_HOST,
    open_browser: Annotated[bool, typer.Option("--open/--no-open",
                                               help="Open the page in the default browser.")]
    = False,
    check: Annotated[bool, typer.Option("--check", help="Instead of serving: play the package "
                                        "in headless Chromium with each player and report.")]
    = False,
    player: Annotated[list[str] | None, typer.Option(help="With --check: dashjs, shaka, "
                                                     "shaka-hls, hlsjs (repeatable).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Serve the package with its DASH and HLS players on 127.0.0.1 (Ctrl-C to stop)."""
    if not package.is_dir():
        raise BadInputError("not a directory", path=package,
                            hint="pass a package directory made by `discriminator encode`")
    if not ((package / MPD_NAME).is_file() or (package / HLS_MASTER_NAME).is_file()):
        raise BadInputError(f"neither {MPD_NAME} nor {HLS_MASTER_NAME} here", path=package,
                            hint="pass a package directory made by `discriminator encode`")
    if check:
        _check(package, tuple(player or DEFAULT_PLAYERS), json_output)
        return
    node_modules = find_node_modules()
    server = PreviewServer(package, node_modules, host=host, port=port)
    urls = server.urls()
    if json_output:
        print_json(urls)
    else:
        _print_urls(urls)
    if node_modules is None:
        warn(f"player libraries not found: serving the package without them, and the page "
             f"says so — {NPM_HINT}")
    if not _is_loopback(host):
        warn(f"listening on {host}: anyone who can reach this machine can fetch the "
             "package")
    if open_browser:
        webbrowser.open(str(urls["url"]))
    info("Serving; Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        info("stopped")
    finally:
        server.close()


def _print_urls(urls: dict[str, object]) -> None:
    table = Table("", "URL", box=None, show_header=False, pad_edge=False)
    for item in urls["players"]:  # type: ignore[attr-defined]
        table.add_row(plain(item["label"]), plain(item["url"]))
    labels = {"dash": "DASH manifest", "hls": "HLS master"}
    for kind, url in urls["manifests"].items():  # type: ignore[attr-defined]
        table.add_row(labels[kind], plain(url))
    out_console.print(plain(f"Preview of {urls['package']}"))
    out_console.print(table)
    sys.stdout.flush()


def _check(package: Path, players: tuple[str, ...], json_output: bool) -> None:
    with err_console.status(plain(f"playing {package} in headless Chromium")):
        report = check_playback(package, players)
    if json_output:
        print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        failed = ", ".join(p.player for p in report.players if not p.ok)
        raise ValidationFailedError(f"playback check failed with {failed}", path=package,
                                    hint="see `failures` in the JSON report" if json_output
                                    else "the reasons are listed above")


def _print_report(report: PlaybackReport) -> None:
    table = Table("player", "result", "heights", "audio", "played", "reqs", "206", "4xx/5xx",
                  "time", box=box.SIMPLE_HEAD)
    for p in report.players:
        # A trailing ! marks a rendition that did not decode at its declared height.
        heights = ",".join(f"{c['height']}{'' if c.get('ok') else '!'}" for c in p.renditions)
        table.add_row(p.player, "[green]ok[/green]" if p.ok else "[red]FAILED[/red]",
                      heights or "-", plain(p.audio_language or "-"),
                      f"{p.played_seconds:.1f} s",
                      str(p.requests), str(p.partial_responses), str(len(p.bad_requests)),
                      f"{p.seconds:.1f} s")
    out_console.print(plain(f"Chromium {report.chromium}: {report.package}"))
    out_console.print(table)
    for line in report.failures():
        error(line, label="✗")
