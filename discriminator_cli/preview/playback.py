"""The real-browser playback check: do dash.js, shaka-player and hls.js play this package?

The package is served by PreviewServer; driver.mjs drives headless Chromium (playwright-core
from npm, Debian's chromium binary) through the preview page and reports what each player
did. This module judges those observations against the manifests and the server's request
log. "It played" is not enough, because players silently drop renditions they cannot decode
and retry quietly after a 404 or 416, so a player passes only when:

- it loads the manifest and plays at least `play_seconds` of media;
- the renditions it offers equal the ones the manifest declares (size and bandwidth);
- each rendition, forced in turn, decodes at its declared height (videoElement.videoHeight);
- its active audio track has the declared (and, if given, the expected) language;
- a seek to the middle resumes playback;
- no fatal player or media error and no uncaught page error occurred;
- the server answered none of the requests made during its run with a 4xx or 5xx.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.preview.declared import DeclaredManifest, read_declared
from discriminator_cli.preview.players import (
    PAGE_PLAYERS,
    require_chromium,
    require_node,
    require_node_modules,
    require_playwright,
)
from discriminator_cli.preview.server import PreviewServer, RequestRecord
from discriminator_cli.runner import CommandRunner

DRIVER = Path(__file__).with_name("driver.mjs")
PLAYER_MANIFESTS = {p.id: p.manifest for p in PAGE_PLAYERS.values()}
DEFAULT_PLAYERS = ("dashjs", "shaka", "hlsjs")
DEFAULT_PLAY_SECONDS = 4.0
DEFAULT_STEP_TIMEOUT = 20.0
# Media beyond play_seconds that the check needs: the play step must reach play_seconds
# before the end of the clip. A clip of play_seconds + 2 s or more (8 s at the default) is safe.
CLIP_MARGIN_SECONDS = 1.0


@dataclass
class PlayerResult:
    player: str
    manifest: str
    ok: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    declared: list[dict[str, Any]] = field(default_factory=list)
    offered: list[dict[str, Any]] = field(default_factory=list)
    renditions: list[dict[str, Any]] = field(default_factory=list)
    audio_language: str | None = None
    played_seconds: float = 0.0
    seconds: float = 0.0
    requests: int = 0
    partial_responses: int = 0  # 206s: proof that the player used byte ranges
    bad_requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PlaybackReport:
    package: str
    ok: bool
    chromium: str | None
    players: list[PlayerResult]
    seconds: float

    def failures(self) -> list[str]:
        return [f"{p.player}: {f}" for p in self.players for f in p.failures]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _primary_language(code: str | None) -> str:
    return (code or "").split("-")[0].lower()


def _requests_during(log: list[RequestRecord], observed: dict[str, Any]) -> list[RequestRecord]:
    started = observed.get("startedAt") or 0.0
    ended = observed.get("endedAt") or time.time()
    return [r for r in log if started <= r.at <= ended]


def judge(observed: dict[str, Any], declared: DeclaredManifest, log: list[RequestRecord], *,
          play_seconds: float, expected_language: str | None) -> PlayerResult:
    """Turn one player's observations into a verdict (pure: no browser, no server)."""
    player = observed["player"]
    result = PlayerResult(player, declared.kind, ok=False)
    failures = result.failures
    result.declared = [asdict(r) for r in declared.renditions]
    result.offered = observed.get("offered") or []
    result.renditions = observed.get("renditionChecks") or []
    steps = observed.get("steps") or []
    result.seconds = round(sum(s.get("seconds", 0.0) for s in steps), 2)

    for step in steps:
        if not step.get("ok"):
            failures.append(f"step '{step['name']}' failed: {step.get('detail')}")

    with_bandwidth = PAGE_PLAYERS[player].reports_declared_bandwidth
    declared_set = sorted((r.width, r.height) + ((r.bandwidth,) if with_bandwidth else ())
                          for r in declared.renditions)
    offered_set = sorted((o["width"], o["height"]) + ((o["bandwidth"],) if with_bandwidth else ())
                         for o in result.offered)
    if steps and steps[0].get("ok") and offered_set != declared_set:
        failures.append(f"player offers renditions {offered_set}, manifest declares "
                        f"{declared_set}")
    for check in result.renditions:
        if check.get("ok") and check.get("videoHeight") != check.get("height"):
            failures.append(f"rendition {check['width']}x{check['height']} decoded at height "
                            f"{check.get('videoHeight')}")

    final = observed.get("final") or {}
    stats = final.get("stats") or {}
    result.played_seconds = round(float(stats.get("played") or 0.0), 2)
    tracks, active = final.get("audioTracks") or [], final.get("activeAudio")
    if active is not None and 0 <= active < len(tracks):
        result.audio_language = tracks[active].get("language") or None
    if declared.audio_languages:
        wanted = {_primary_language(code) for code in declared.audio_languages}
        if _primary_language(result.audio_language) not in wanted:
            failures.append(f"audio language {result.audio_language!r}, manifest declares "
                            f"{declared.audio_languages}")
    if expected_language and _primary_language(result.audio_language) != \
            _primary_language(expected_language):
        failures.append(f"audio language {result.audio_language!r}, expected "
                        f"{expected_language!r}")
    if result.played_seconds < play_seconds and not failures:
        failures.append(f"played {result.played_seconds} s of media, wanted {play_seconds}")

    for error in final.get("errors") or []:
        text = f"{error['source']}: {error['detail']}"
        (failures if error.get("fatal") else result.warnings).append(text)
    if stats.get("mediaError"):
        failures.append(f"media element error {stats['mediaError']}")
    failures.extend(f"page error: {e}" for e in observed.get("pageErrors") or [])

    during = _requests_during(log, observed)
    result.requests = len(during)
    result.partial_responses = sum(1 for r in during if r.status == 206)
    bad = [r for r in during if r.status >= 400]
    result.bad_requests = [r.as_dict() for r in bad]
    if bad:
        shown = "; ".join(f"{r.status} {r.method} {r.path} {r.range or ''}".strip()
                          for r in bad[:3])
        failures.append(f"server answered {len(bad)} request(s) with an error: {shown}")
    result.ok = not failures
    return result


def check_playback(package_dir: Path, players: tuple[str, ...] | list[str] = DEFAULT_PLAYERS,
                   *, expected_language: str | None = None,
                   play_seconds: float = DEFAULT_PLAY_SECONDS,
                   step_timeout: float = DEFAULT_STEP_TIMEOUT,
                   runner: CommandRunner | None = None) -> PlaybackReport:
    """Play the package in headless Chromium with each player; never raises on bad playback
    (that is the report's `ok`), only on a missing tool or an unusable package."""
    unknown = [p for p in players if p not in PLAYER_MANIFESTS]
    if unknown:
        raise BadInputError(f"unknown player(s) {', '.join(unknown)}",
                            hint=f"choose from {', '.join(PLAYER_MANIFESTS)}")
    declared = {kind: read_declared(package_dir, kind)
                for kind in sorted({PLAYER_MANIFESTS[p] for p in players})}
    for manifest in declared.values():
        if manifest.duration is not None and \
                manifest.duration < play_seconds + CLIP_MARGIN_SECONDS:
            raise BadInputError(f"the clip lasts {manifest.duration:.2f} s; the check plays "
                                f"{play_seconds} s and needs {CLIP_MARGIN_SECONDS} s more",
                                path=manifest.path, hint="use a longer clip")
    node_modules = require_node_modules()
    require_playwright(node_modules)
    chromium, node = require_chromium(), require_node()
    runner = runner or CommandRunner()
    most_renditions = max(len(d.renditions) for d in declared.values())
    per_player = step_timeout * (3 + most_renditions) + play_seconds
    started = time.monotonic()
    with PreviewServer(package_dir, node_modules, port=0) as server:
        job = {"baseUrl": server.base_url, "players": list(players), "chromium": chromium,
               "nodeModules": str(node_modules), "playSeconds": play_seconds,
               "stepTimeoutMs": int(step_timeout * 1000),
               "deadlineMs": int((30 + per_player * len(players)) * 1000)}
        run = runner.run([node, str(DRIVER), json.dumps(job)], what="playback driver (node)",
                         path=package_dir, check=False)
        log = server.requests()
    try:
        output = json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        raise ToolFailedError("playback driver printed no result", argv=run.argv,
                              returncode=run.returncode, stderr=run.stderr, path=package_dir,
                              hint="run `npm ci`; check that chromium starts") from exc
    if output.get("fatal") and not output.get("players"):
        raise ToolFailedError(f"playback driver failed: {output['fatal'].splitlines()[0]}",
                              argv=run.argv, returncode=run.returncode,
                              stderr=output["fatal"] + "\n" + run.stderr, path=package_dir)
    results = [judge(observed, declared[PLAYER_MANIFESTS[observed["player"]]], log,
                     play_seconds=play_seconds, expected_language=expected_language)
               for observed in output.get("players", [])]
    seen = {r.player for r in results}
    for missing in (p for p in players if p not in seen):
        results.append(PlayerResult(missing, PLAYER_MANIFESTS[missing], ok=False,
                                    failures=[f"not run: {output.get('fatal')}"]))
    return PlaybackReport(package=str(package_dir), ok=all(r.ok for r in results),
                          chromium=output.get("chromiumVersion"), players=results,
                          seconds=round(time.monotonic() - started, 2))
