"""A local execution's record on disk (`execution.json`, `properties.json` beside it), and its runner's liveness.

The runner writes its pid and host and a heartbeat into the record while it runs. Whoever reads a record that says
Executing while its runner is gone (the pid no longer runs on this host, or the heartbeat is older than
`STALE_AFTER_SECONDS`) marks it Failed with the reason, as SageMaker ends an execution whose step died.
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0
STEP_FAILURE_REASON_MAX = 1024  # botocore: PipelineExecutionStep.FailureReason
EXECUTION_FAILURE_REASON_MAX = 1300  # botocore: DescribePipelineExecution.FailureReason
ACTIVE = ("Executing", "Stopping")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_json(path: Path, data: Any) -> None:
    """Replace `path` atomically (a reader never sees half a record)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    temporary.replace(path)


def runner_identity() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now_iso()}


def runner_gone(runner: dict[str, Any] | None, now: datetime | None = None) -> str | None:
    """Why the runner of an active execution is gone, or None while it is alive."""
    if not runner:
        return "its runner left no pid or heartbeat"
    beat = datetime.fromisoformat(runner["heartbeat"])
    age = ((now or datetime.now(timezone.utc)) - beat).total_seconds()
    if runner.get("host") == socket.gethostname() and not pid_alive(int(runner["pid"])):
        return f"its runner (pid {runner['pid']}) is no longer running; last heartbeat {runner['heartbeat']}"
    if age > STALE_AFTER_SECONDS:
        return f"its runner (pid {runner['pid']} on {runner.get('host')}) sent no heartbeat for {age:.0f}s"
    return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (one we may not signal still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_execution(path: Path, now: datetime | None = None) -> dict[str, Any]:
    """An execution.json record; one left active by a dead runner is marked Failed (and saved) first."""
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("status") not in ACTIVE:
        return record
    reason = runner_gone(record.get("runner"), now)
    if reason is None:
        return record
    message = f"execution ended without its runner: {reason}"
    for step in record.get("steps", []):
        if step.get("status") in ("Starting", "Executing", "Stopping"):
            step.update(status="Failed", ended=now_iso(), failure_reason=message[:STEP_FAILURE_REASON_MAX])
    record.update(status="Failed", failure_reason=message[:EXECUTION_FAILURE_REASON_MAX])
    write_json(path, record)
    return record


def find_execution(home: Path, execution: str) -> Path:
    """The folder of a local execution given its id or ARN (`.../execution/<id>`)."""
    execution_id = execution.rsplit("/", 1)[-1]
    matches = sorted((home / "executions").glob(f"*/{execution_id}/execution.json"))
    if not matches:
        raise FileNotFoundError(f"no local execution {execution_id!r} under {home / 'executions'}")
    return matches[0].parent
