"""The demo's two rounds, run once per test session; each module that needs the demo's home works on its own copy.

A demo round takes about 40 s, and the modules that need a demo home change it (approve, roll back, give feedback,
delete endpoints), so `build_demo_rounds` runs both rounds in one working home, snapshots the home after each
round, then deletes its endpoints (their serving processes stop; a copy's endpoints restart on their next
invocation, as after a reboot) and the working home itself, so that a copy which still leaned on it would fail.

A home is relocatable but for the absolute paths that runs record in text files (execution records, job logs,
evaluation lineage, endpoint state): `DemoSnapshot.copy_to` rewrites the working home's path to the copy's in
every text file (the model archives' provenance fields keep the container paths they were trained from).
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.backend import local_backend
from pipelines.config import load_config
from pipelines.demo.run_demo import DemoSummary, run_demo

TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".log", ".html", ".md", ".txt", ".yaml", ".yml", ".csv"})


@dataclass(frozen=True)
class DemoSnapshot:
    """The demo's home right after round `summary.round_no`, built at `built_at` and kept at `snapshot`."""

    snapshot: Path
    built_at: Path
    summary: DemoSummary

    def copy_to(self, dest: Path) -> Path:
        """A copy of the home at `dest` (an empty or missing folder) with every recorded path pointing into it."""
        dest = dest.resolve()
        if dest.exists():
            dest.rmdir()  # must be empty (a fresh mktemp folder)
        shutil.copytree(self.snapshot, dest, symlinks=True)
        pattern = re.compile(re.escape(str(self.built_at)) + r"(?![\w.-])")
        for path in dest.rglob("*"):
            if path.suffix not in TEXT_SUFFIXES or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # not text after all (nothing of ours writes a path into such a file)
            moved = pattern.sub(lambda _: str(dest), text)
            if moved != text:
                stat = path.stat()
                path.write_text(moved, encoding="utf-8")
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # "the latest" stays the latest
        return dest

    def summary_in(self, home: Path) -> DemoSummary:
        """The round's summary with its local paths (evaluation report, capture folder, run folders) in `home`."""
        return _rebased(self.summary, str(self.built_at), str(home))


def build_demo_rounds(root: Path) -> dict[int, DemoSnapshot]:
    """Run the demo's rounds 1 and 2 in `root/home`; a snapshot of the home after each, keyed by round."""
    home = root / "home"
    snapshots: dict[int, DemoSnapshot] = {}
    for round_no in (1, 2):
        lines: list[str] = []
        summary = run_demo(home, echo=lines.append)
        assert summary.succeeded, "\n".join(lines[-60:])
        assert summary.round_no == round_no, "\n".join(lines[-60:])
        snapshot = root / f"after-round-{round_no}"
        shutil.copytree(home, snapshot, symlinks=True)
        snapshots[round_no] = DemoSnapshot(snapshot, home.resolve(), summary)
    sagemaker = local_backend(load_config(), home).client("sagemaker")
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for endpoint in page["Endpoints"]:
            sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
    shutil.rmtree(home)
    return snapshots


def _rebased(value: Any, old: str, new: str) -> Any:
    """`value` with every path or string under `old` moved under `new` (dataclasses, dicts, lists, tuples)."""
    if isinstance(value, Path):
        return Path(_rebased(str(value), old, new))
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _rebased(getattr(value, f.name), old, new)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, dict):
        return {key: _rebased(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rebased(item, old, new) for item in value)
    return value
