"""Findings and the report that collects them, with JSON, JUnit XML and table renderings."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from lxml import etree
from rich.table import Table
from rich.text import Text

EXCERPT_CHARS = 120  # file text quoted in a message: enough to recognise it, never megabytes


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut to `limit` characters (with a count of the rest), control characters
    shown as escapes, so a hostile manifest cannot flood or break a one-line finding."""
    shown = _one_line_text(text[:limit])
    return shown if len(text) <= limit else f"{shown}… ({len(text) - limit} more characters)"


Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One problem: which check, where (file + line / XPath / byte offset) and why it matters."""

    severity: Severity
    check: str  # stable id, e.g. 'hls.byterange-out-of-file'
    file: str  # the manifest or media file the location refers to
    location: str  # 'line 12', '/MPD/Period[1]/AdaptationSet[1]', 'byte 966', or ''
    message: str
    manifest: str | None = None  # the manifest that led to this file, when it is media

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def one_line(self) -> str:
        """`FILE:LOCATION: severity check-id: message`, as compilers print them (no LOCATION
        part when there is none); control characters in the file name are escaped so one
        finding is always one line."""
        file = _one_line_text(self.file)
        where = f"{file}:{self.location}" if self.location else file
        return f"{where}: {self.severity} {self.check}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    media_files: list[str] = field(default_factory=list)
    _seen: set[tuple[str, str, str, str]] = field(default_factory=set, repr=False)
    # Package root of each manifest: references must stay under it (checks.resolve_reference).
    _roots: dict[str, Path] = field(default_factory=dict, repr=False)

    def set_root(self, manifest: Path, root: Path) -> None:
        """`manifest`'s package root; the first one recorded wins (a master's root passes on
        to the playlists it names)."""
        self._roots.setdefault(str(manifest), root)

    def root_of(self, manifest: Path) -> Path:
        return self._roots.get(str(manifest), manifest.parent)

    def add(self, severity: Severity, check: str, file: object, location: str | int | None,
            message: str, *, manifest: object | None = None) -> None:
        """Record a finding; the same check at the same place is recorded once.

        DASH and HLS usually share media files, so a problem in a file would otherwise be
        reported once per manifest that points at it.
        """
        where = _location(location)
        key = (check, str(file), where, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.findings.append(Finding(severity, check, str(file), where, " ".join(message.split()),
                                     str(manifest) if manifest is not None else None))

    def error(self, check: str, file: object, location: str | int | None, message: str,
              **kwargs: object) -> None:
        self.add("error", check, file, location, message, **kwargs)

    def warning(self, check: str, file: object, location: str | int | None, message: str,
                **kwargs: object) -> None:
        self.add("warning", check, file, location, message, **kwargs)

    def info(self, check: str, file: object, location: str | int | None, message: str,
             **kwargs: object) -> None:
        self.add("info", check, file, location, message, **kwargs)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def ok(self, *, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)

    def exit_code(self, *, strict: bool = False) -> int:
        return 0 if self.ok(strict=strict) else 1

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.file,
                                                    _location_key(f.location), f.check))

    def summary(self) -> dict[str, int]:
        """Counts, as `discriminator encode` records them in its result."""
        counts = Counter(f.severity for f in self.findings)
        return {"errors": counts["error"], "warnings": counts["warning"],
                "notes": counts["info"], "manifests": len(self.manifests),
                "media_files": len(self.media_files)}

    def summary_line(self) -> str:
        counts = self.summary()
        return (f"{counts['manifests']} manifest(s), {counts['media_files']} media file(s): "
                f"{counts['errors']} error(s), {counts['warnings']} warning(s), "
                f"{counts['notes']} note(s)")

    def as_dict(self, *, strict: bool = False) -> dict[str, object]:
        return {"ok": self.ok(strict=strict), "strict": strict,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "manifests": self.manifests, "media_files": self.media_files,
                "findings": [f.as_dict() for f in self.sorted_findings()]}

    def text(self) -> str:
        """One `FILE:LOCATION: severity check-id: message` line per finding, then the
        summary: what `validate --format text` prints for logs."""
        lines = [f.one_line() for f in self.sorted_findings()]
        return "\n".join([*lines, self.summary_line()])

    def table(self) -> Table:
        """For a terminal. Cells are Text, never markup: file names and messages quote the
        package (a segment 'seg[/b].mp4' is a name, not a closing tag)."""
        table = Table(title=self.summary_line(), title_justify="left", show_lines=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("check", overflow="fold")
        table.add_column("where", overflow="fold")
        table.add_column("explanation", ratio=1)
        styles = {"error": "red", "warning": "yellow", "info": "cyan"}
        for f in self.sorted_findings():
            where = _display_path(f.file) + (f"\n{f.location}" if f.location else "")
            table.add_row(Text(f.severity, style=styles[f.severity]), Text(f.check),
                          Text(where), Text(f.message))
        return table

    def junit_xml(self, *, strict: bool = False) -> bytes:
        """One testsuite per manifest (and per media file with findings); one testcase per
        finding, errors (and warnings under --strict) as failures; a clean manifest gets one
        passing testcase so CI shows what was checked."""
        suites = etree.Element("testsuites", name="discriminator validate")
        files = list(dict.fromkeys([*self.manifests,
                                    *(f.file for f in self.findings)]))
        total_failures = 0
        for name in files:
            mine = [f for f in self.sorted_findings() if f.file == name]
            suite = etree.SubElement(suites, "testsuite", name=name)
            failures = 0
            if not mine:
                etree.SubElement(suite, "testcase", classname=name, name="valid")
            for f in mine:
                case = etree.SubElement(suite, "testcase", classname=name,
                                        name=f"{f.check} {f.location}".strip())
                if f.severity == "error" or (strict and f.severity == "warning"):
                    failures += 1
                    fail = etree.SubElement(case, "failure", type=f.check, message=f.message)
                    fail.text = f.one_line()
                else:
                    out = etree.SubElement(case, "system-out")
                    out.text = f.one_line()
            suite.set("tests", str(max(1, len(mine))))
            suite.set("failures", str(failures))
            suite.set("errors", "0")
            total_failures += failures
        suites.set("tests", str(sum(int(s.get("tests", "0")) for s in suites)))
        suites.set("failures", str(total_failures))
        return etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _one_line_text(text: str) -> str:
    return text if text.isprintable() else \
        "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                for c in text)


def _display_path(file: str) -> str:
    """Relative to the working directory when inside it: shorter, and what the user typed."""
    try:
        return os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
    except ValueError:  # another drive on Windows
        return file


def _location(location: str | int | None) -> str:
    if location is None:
        return ""
    if isinstance(location, int):
        return f"byte {location}"
    return location


def _location_key(location: str) -> tuple[str, int, str]:
    """'line 12 (...)' sorts by kind then number, so line 9 comes before line 10."""
    match = _LOCATION_NUMBER.match(location)
    return (match.group(1), int(match.group(2)), location) if match else (location, 0, "")


_LOCATION_NUMBER = re.compile(r"^(\w+) (\d+)")
