"""Offline validation of DASH + HLS packages, down to the MP4 boxes.

`validate_paths([...])` and `validate_package(dir)` return a `Report` of `Finding`s; the
CLI (`discriminator validate`) renders it and maps it to an exit code.
"""

from discriminator_cli.validate.api import find_manifests, validate_package, validate_paths
from discriminator_cli.validate.report import Finding, Report

__all__ = ["Finding", "Report", "find_manifests", "validate_package", "validate_paths"]
