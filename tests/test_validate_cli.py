"""`discriminator validate` exit codes, outputs (table, --json, --junit), --strict, and the
library entry points encode uses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from discriminator_cli.errors import BadInputError
from discriminator_cli.validate import find_manifests, validate_package
from tests.test_validate_corpus import run_cli
from tests.validate_corpus import MUTATIONS, variant_playlists


def test_unusable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("validate", str(tmp_path / "missing")) == 2
    assert "no such file" in capsys.readouterr().err
    assert run_cli("validate", str(tmp_path)) == 2  # a directory without manifests
    assert "no .mpd or .m3u8" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert run_cli("validate", str(tmp_path / "notes.txt")) == 2


def test_find_manifests(shaka_package: Path, tmp_path: Path) -> None:
    found = {p.name for p in find_manifests([shaka_package])}
    assert {"stream.mpd", "master.m3u8", "audio_eng.m3u8"} <= found
    single = find_manifests([shaka_package / "stream.mpd", shaka_package / "stream.mpd"])
    assert single == [(shaka_package / "stream.mpd").resolve()]
    staging = tmp_path / "media"
    shutil.copytree(shaka_package, staging / ".staging-x")
    with pytest.raises(BadInputError):  # half-written packages are not picked up
        find_manifests([staging])


def test_table_output_and_strict(any_package: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    report = validate_package(any_package)
    assert not report.errors
    assert run_cli("validate", str(any_package)) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out
    assert run_cli("validate", str(any_package), "--strict") == (1 if report.warnings else 0)


def test_errors_in_table_json_and_junit(shaka_package: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MUTATIONS["EXT-X-VERSION too low"][0](package)
    junit = tmp_path / "reports" / "validate.xml"
    assert run_cli("validate", str(package), "--junit", str(junit)) == 1
    assert "hls.version-too-low" in capsys.readouterr().out
    tree = etree.parse(str(junit)).getroot()
    failures = [f.get("type") for f in tree.iter("failure")]
    assert "hls.version-too-low" in failures
    assert tree.get("failures") == str(len(failures))
    playlist = str(variant_playlists(package)[0].resolve())
    assert playlist in {s.get("name") for s in tree.iter("testsuite")}
    assert run_cli("validate", str(package / "stream.mpd"), "--json") == 0  # DASH alone is fine
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_several_paths_and_a_single_playlist(shaka_package: Path, bento4_package: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("validate", str(shaka_package), str(bento4_package), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["media_files"]) == 6
    playlist = variant_playlists(shaka_package)[0]
    assert run_cli("validate", str(playlist), "--json") == 0
    assert json.loads(capsys.readouterr().out)["manifests"] == [str(playlist.resolve())]


def test_console_script(shaka_package: Path, tmp_path: Path) -> None:
    """The installed entry point, in a fresh process, as CI runs it."""
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MUTATIONS["malformed XML"][0](package)
    proc = subprocess.run([sys.executable, "-m", "discriminator_cli", "validate", str(package),
                           "--json"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    checks = {f["check"] for f in json.loads(proc.stdout)["findings"]}
    assert "dash.xml-malformed" in checks


def test_validate_package_is_what_encode_calls(shaka_package: Path) -> None:
    report = validate_package(shaka_package)
    summary = report.summary()
    assert summary["errors"] == len(report.errors) == 0
    assert summary["manifests"] == len(report.manifests) and summary["media_files"] == 3


def test_file_text_is_never_read_as_markup(shaka_package: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A segment named like a Rich closing tag is printed as is, in every format."""
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    playlist = variant_playlists(package)[0]
    media = playlist.read_text().splitlines()[-2]  # the last segment's URI line
    playlist.write_text(playlist.read_text().replace(f"\n{media}\n", "\nseg[/b][red].mp4\n"))
    for output in ("table", "text"):
        assert run_cli("validate", str(package), "--format", output) == 1
        captured = capsys.readouterr()
        assert "seg[/b][red].mp4" in captured.out
        assert "Traceback" not in captured.err and "MarkupError" not in captured.err


def test_text_format_is_one_unwrapped_line_per_finding(shaka_package: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MUTATIONS["EXT-X-VERSION too low"][0](package)
    MUTATIONS["wrong codecs (DASH)"][0](package)
    assert run_cli("validate", str(package / "stream.mpd"), str(package), "--json") == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    # Off a terminal (captured stdout) text is the default; --format text says the same.
    for args in ((), ("--format", "text")):
        assert run_cli("validate", str(package), *args) == 1
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(findings) + 1  # and the summary
        for line, finding in zip(lines, findings, strict=False):
            where = f"{finding['file']}:{finding['location']}" if finding["location"] \
                else finding["file"]
            assert line == (f"{where}: {finding['severity']} {finding['check']}: "
                            f"{finding['message']}")
        assert max(len(line) for line in lines) > 80  # long explanations stay on their line
        assert "error(s)" in lines[-1]


def test_table_off_a_terminal_is_not_cut_at_80_columns(shaka_package: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MUTATIONS["wrong codecs (DASH)"][0](package)
    assert run_cli("validate", str(package), "--format", "table") == 1
    out = capsys.readouterr().out
    assert "dash.codecs-mismatch" in out
    message = next(line for line in out.splitlines() if "@codecs is" in line)
    assert "players may reject it or pick the wrong decoder" in message  # one row, unwrapped
