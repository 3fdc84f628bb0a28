"""`validate` on hostile packages: references leaving the package, absurd numbers and sizes.

Every case must end as findings (exit 1) or a one-line bad-input error (exit 2), never a
traceback, in bounded memory; files outside the package are never opened.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from discriminator_cli.validate import validate_paths
from tests.test_validate_corpus import error_checks, run_validate
from tests.validate_corpus import OUTSIDE_MUTATIONS, outside_dir

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
