"""SageMaker's container contract on one machine: `/opt/ml` under a job folder, a subprocess per job."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

CONTAINER_PREFIX = "/opt/ml"


class JobFailed(RuntimeError):
    """A job whose process exited non-zero; the message carries the exit code and the last log lines."""


@dataclass(frozen=True)
class ContainerRoot:
    """The emulated container filesystem of one job: `/opt/ml/x` lives at `<root>/opt/ml/x`."""

    root: Path

    def remap(self, value: str) -> str:
        """Rewrite container paths in an argument (`/opt/ml/...` or `--flag=/opt/ml/...`)."""
        if value.startswith(CONTAINER_PREFIX):
            return str(self.root) + value
        flag, sep, rest = value.partition("=")
        if sep and rest.startswith(CONTAINER_PREFIX):
            return f"{flag}={self.root}{rest}"
        return value

    def host_path(self, container_path: str) -> Path:
        if not container_path.startswith(CONTAINER_PREFIX):
            raise ValueError(f"container path {container_path!r} is outside {CONTAINER_PREFIX}")
        return Path(str(self.root) + container_path)

    def remap_script(self, script: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
        """A copy of a shell script with its container paths rewritten (e.g. the SDK's runproc.sh), then `edit`ed."""
        text = edit(script.read_text(encoding="utf-8"))
        remapped = script.with_name(f"{script.name}.local")
        remapped.write_text(text.replace(CONTAINER_PREFIX + "/", f"{self.root}{CONTAINER_PREFIX}/"), encoding="utf-8")
        return remapped


def host_environment(job_environment: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The job's environment: this interpreter first on PATH, the job's variables, the runtime's."""
    # No AWS_* from the parent (a profile or real credentials must not leak into a local job).
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "AWS_"))}
    interpreter_dir = str(Path(sys.executable).parent)
    env["PATH"] = interpreter_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(job_environment)
    env.update(extra)
    return env


def run_process(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    echo: Callable[[str], None],
    tail_lines: int = 30,
) -> list[str]:
    """Run one job process; every line goes to the log and to `echo`. Returns all output lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=tail_lines)
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        _pump(process.stdout, log, lines, tail, echo)
        code = process.wait()
    if code != 0:
        raise JobFailed(f"exit code {code}: {failure_line(list(tail))} (log: {log_path})")
    return lines


def failure_line(tail: list[str]) -> str:
    """The line of a failed job's last output that says why: its last error line, else its last line
    (the whole output streamed live and stays in the job's log; the reason is one line, as on AWS)."""
    lines = [line.strip() for line in tail if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:900]


def _pump(stream: TextIO | None, log: TextIO, lines: list[str], tail: deque[str], echo: Callable[[str], None]) -> None:
    assert stream is not None
    for line in stream:
        log.write(line)
        log.flush()
        lines.append(line)
        tail.append(line)
        echo(line.rstrip("\n"))
