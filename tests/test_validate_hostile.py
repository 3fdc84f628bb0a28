"""`validate` on hostile packages: references leaving the package, absurd numbers and sizes.

Every case must end as findings (exit 1) or a one-line bad-input error (exit 2), never a
traceback, in bounded memory; files outside the package are never opened.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from discriminator_cli.validate import validate_paths
from tests.test_validate_corpus import error_checks, run_validate
from tests.validate_corpus import HOSTILE_MUTATIONS, OUTSIDE_MUTATIONS, outside_dir

_opened: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | Path):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside opened_files


@contextlib.contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every path the process opens inside the block (Python's audit 'open' event)."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def copy_package(source: Path, tmp_path: Path) -> Path:
    package = tmp_path / "package"
    shutil.copytree(source, package)
    return package


@pytest.mark.parametrize("mutation", list(OUTSIDE_MUTATIONS))
def test_references_outside_the_package_are_errors_and_never_opened(
        shaka_package: Path, tmp_path: Path, mutation: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    package = copy_package(shaka_package, tmp_path)
    OUTSIDE_MUTATIONS[mutation](package)
    outside = outside_dir(package).resolve()
    with opened_files() as opened:
        code, result = run_validate(capsys, str(package))
    assert code == 1
    assert "file.outside-package" in error_checks(result), result["findings"]
    leaked = [p for p in opened if Path(p).resolve().is_relative_to(outside)
              or p.endswith("passwd")]
    assert not leaked, leaked
    assert not any(Path(m).resolve().is_relative_to(outside)
                   for m in result["manifests"] + result["media_files"])


def test_a_manifest_named_directly_is_confined_to_its_folder(shaka_package: Path,
                                                            tmp_path: Path) -> None:
    package = copy_package(shaka_package, tmp_path)
    OUTSIDE_MUTATIONS["segments in ../outside"](package)
    report = validate_paths([package / "master.m3u8"])
    assert "file.outside-package" in {f.check for f in report.errors}


def test_manifest_symlinked_from_outside_is_not_read(shaka_package: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    package = copy_package(shaka_package, tmp_path)
    elsewhere = tmp_path / "elsewhere.m3u8"
    elsewhere.write_text("#EXTM3U\n#EXTINF:1,\nsecret.mp4\n")
    (package / "extra.m3u8").symlink_to(elsewhere)
    with opened_files() as opened:
        code, result = run_validate(capsys, str(package))
    assert code == 1
    assert "file.outside-package" in error_checks(result)
    assert str(elsewhere) not in opened


def test_references_inside_the_package_still_resolve(shaka_package: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """'sub/../name' and percent-encoded names that stay inside are fine."""
    package = copy_package(shaka_package, tmp_path)
    (package / "sub").mkdir()
    mpd = package / "stream.mpd"
    text = mpd.read_text()
    name = text.split("<BaseURL>", 1)[1].split("<", 1)[0]
    mpd.write_text(text.replace(f"<BaseURL>{name}<", f"<BaseURL>sub/%2e%2e/{name}<", 1))
    code, result = run_validate(capsys, str(package))
    assert code == 0, result["findings"]


@pytest.mark.parametrize("mutation", list(HOSTILE_MUTATIONS))
def test_absurd_numbers_and_sizes_are_findings(shaka_package: Path, tmp_path: Path,
                                               mutation: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    package = copy_package(shaka_package, tmp_path)
    mutate, expected = HOSTILE_MUTATIONS[mutation]
    mutate(package)
    code, result = run_validate(capsys, str(package))
    assert code == 1
    assert expected in error_checks(result), result["findings"]
    longest = max(len(f["message"]) for f in result["findings"])
    assert longest < 1000  # file text is quoted as an excerpt, never whole


_MEASURE = """
import json, resource, sys, time
from discriminator_cli.cli.app import main
started = time.monotonic()
try:
    main(["validate", "--json", sys.argv[1]])
    code = 0
except SystemExit as exited:
    code = exited.code
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # ru_maxrss survives exec (it may be the parent's at fork); VmHWM is this process's own
    with open("/proc/self/status") as status:
        peak_kb = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"code": code, "seconds": time.monotonic() - started,
                  "max_rss_mb": peak_kb / 1024}), file=sys.stderr)
"""


def measure_validate(package: Path) -> dict[str, float]:
    """Exit code, seconds and peak memory of `validate --json PACKAGE` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(package)], capture_output=True,
                          text=True, timeout=300, check=False)
    return json.loads(done.stderr.strip().splitlines()[-1])


# The hostile inputs that used to exhaust memory (2.9 GB for the 20 MB line; MemoryError for
# the trun; 1 GB read for the moof) and the XML ones that could.
MEMORY_CASES = ["20 MB attribute line", "trun sample_count 2^32 with default durations",
                "moof of 1 GiB", "entity expansion (billion laughs)", "20 MB MPD"]


def test_hostile_inputs_stay_in_bounded_memory(shaka_package: Path, tmp_path: Path) -> None:
    """Peak memory stays within a generous margin of validating the good package in the same
    run, and each finishes (the timeout is a hang guard, not a speed target)."""
    baseline = measure_validate(shaka_package)
    assert baseline["code"] == 0
    for number, mutation in enumerate(MEMORY_CASES):
        package = copy_package(shaka_package, tmp_path / str(number))
        HOSTILE_MUTATIONS[mutation][0](package)
        measured = measure_validate(package)
        assert measured["code"] == 1, mutation
        assert measured["max_rss_mb"] < baseline["max_rss_mb"] + 200, (mutation, measured,
                                                                        baseline)
        assert measured["seconds"] < baseline["seconds"] + 60, (mutation, measured)
