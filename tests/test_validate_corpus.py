"""`discriminator validate` on real packages from `encode` (both backends) and on one broken
copy per mutation: good packages exit 0 with no errors, each mutation exits 1 with its own
check id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from discriminator_cli.cli.app import main
from tests.validate_corpus import MORE_MUTATIONS, MUTATIONS, misalign_lowest_rung

# What a good package may still carry: Bento4's last byte range covers its mfra index (a note,
# hls._check_against_fragments). Both packagers also leave the final segment out of BANDWIDTH,
# but `encode` re-declares the measured peaks (encode/hls_fixes.py, I-frame streams too), so
# no warning is expected.
KNOWN_PACKAGER_FINDINGS = {"hls.range-covers-index"}


def run_cli(*args: str) -> int:
    """The exit code of `discriminator ARGS` run in-process (main returns on success)."""
    try:
        main(list(args))
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def run_validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = run_cli("validate", *args, "--json")
    return code, json.loads(capsys.readouterr().out)


def error_checks(result: dict) -> set[str]:
    return {f["check"] for f in result["findings"] if f["severity"] == "error"}


def test_good_package_passes(any_package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = run_validate(capsys, str(any_package))
    assert code == 0, result["findings"]
    assert result["errors"] == 0
    names = {Path(m).name for m in result["manifests"]}
    assert {"stream.mpd", "master.m3u8"} <= names
    # Both rungs, the audio, and every playlist the master names were reached.
    assert len(result["media_files"]) == 3
    assert len(names) == 7  # mpd + master + 2 video + 1 audio + 2 I-frame playlists
    unexpected = {f["check"] for f in result["findings"]} - KNOWN_PACKAGER_FINDINGS
    assert not unexpected, result["findings"]
    assert run_cli("validate", str(any_package), "--strict") == 0


ALL_MUTATIONS = {**MUTATIONS, **MORE_MUTATIONS}


@pytest.mark.parametrize("mutation", list(ALL_MUTATIONS))
def test_mutation_is_caught(any_package: Path, mutation: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "package"
    shutil.copytree(any_package, package)
    mutate, expected = ALL_MUTATIONS[mutation]
    mutate(package)
    code, result = run_validate(capsys, str(package))
    assert code == 1
    assert expected in error_checks(result), result["findings"]
    finding = next(f for f in result["findings"] if f["check"] == expected)
    assert finding["message"] and finding["file"]
    assert finding["location"] or expected.startswith("cross.")


def test_misaligned_keyframes_are_caught(any_package: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "package"
    shutil.copytree(any_package, package)
    backend = "bento4" if (package / "master.m3u8").read_text().find("Bento4") >= 0 else "shaka"
    misalign_lowest_rung(package, backend, tmp_path / "work")
    code, result = run_validate(capsys, str(package))
    assert code == 1
    assert {"dash.segments-unaligned", "hls.segments-unaligned"} <= error_checks(result)


def test_mutations_name_the_right_place(shaka_package: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Locations point at the offending line, element or byte."""
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MUTATIONS["EXT-X-VERSION too low"][0](package)
    MUTATIONS["wrong codecs (DASH)"][0](package)
    MUTATIONS["segment starts with a non-sync sample"][0](package)
    _, result = run_validate(capsys, str(package))
    by_check = {f["check"]: f for f in result["findings"]}
    version = by_check["hls.version-too-low"]
    lines = Path(version["file"]).read_text().splitlines()
    assert lines[int(version["location"].split()[1]) - 1] == "#EXT-X-VERSION:3"
    assert "/MPD/Period[1]/AdaptationSet[" in by_check["dash.codecs-mismatch"]["location"]
    sync = by_check["media.segment-not-sync"]
    offset = int(sync["location"].split()[1])
    with open(sync["file"], "rb") as handle:
        handle.seek(offset + 4)
        assert handle.read(4) == b"moof"


def test_languages_compared_across_protocols(shaka_package: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "package"
    shutil.copytree(shaka_package, package)
    MORE_MUTATIONS["wrong DASH lang"][0](package)
    _, result = run_validate(capsys, str(package))
    assert {"dash.language-mismatch", "cross.languages-differ"} <= error_checks(result)
