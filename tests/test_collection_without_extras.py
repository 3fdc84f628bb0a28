"""The suite is collectable on a `.[dev]` install: without the lipsync extra every test module
still imports (tests that need the extra skip), so `pytest -m bento4` or `-m browser` works there.

The extra's packages are installed here, so a subprocess hides them with an import hook that
raises ModuleNotFoundError, as a machine without them would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Everything the lipsync extra brings (and what those packages pull) that a test could import.
EXTRA_MODULES = ("numpy", "torch", "librosa", "scipy", "soundfile", "skimage", "PIL", "cv2",
                 "face_alignment", "tqdm", "numba", "sklearn")

_HIDE_AND_COLLECT = """
import importlib.abc, sys
HIDDEN = set(sys.argv[1].split(","))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        return None

sys.meta_path.insert(0, Hide())
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-rs", "-p", "no:cacheprovider",
                      *sys.argv[2:]]))
"""


def _collect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-c", _HIDE_AND_COLLECT, ",".join(EXTRA_MODULES),
                           *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          check=False, timeout=300)


def test_every_module_collects_without_numpy_or_torch() -> None:
    result = _collect(str(ROOT / "tests"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert "collected" in summary and "error" not in summary, output
    # Every module that needs the extra was skipped (not collected with broken imports).
    needs_extra = sorted(path.name for path in (ROOT / "tests").glob("test_*.py")
                         if "\npytestmark = pytest.mark.lipsync" in path.read_text())
    skipped = {line.split()[2].split(":")[0].rsplit("/", 1)[-1]
               for line in output.splitlines() if line.startswith("SKIPPED")}
    assert len(needs_extra) >= 7 and set(needs_extra) <= skipped, output


def test_a_marker_run_collects_without_the_extra() -> None:
    result = _collect(str(ROOT / "tests"), "-m", "bento4")
    output = result.stdout + result.stderr
    assert result.returncode in (0, 5), output  # 5: no test carries the marker
    assert "error" not in output.strip().splitlines()[-1], output
