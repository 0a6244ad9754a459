"""Long actions of the dashboard (a pipeline run, a deploy, a rollback, a comparison) in background threads.

A job keeps the lines its action echoes and ends Succeeded or Failed with a message; its page polls until then.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Job:
    id: str
    title: str
    status: str = "Running"
    lines: list[str] = field(default_factory=list)
    message: str = ""
    result: Any = None
    link: str | None = None  # where the job's outcome is shown when it ends
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def echo(self, line: str) -> None:
        self.lines.append(str(line))
        del self.lines[:-400]

    @property
    def done(self) -> bool:
        return self.status != "Running"

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, title: str, work: Callable[[Job], Any], link: str | None = None) -> Job:
        """Run ``work(job)`` in a thread; an exception ends the job Failed with its message (never a traceback)."""
        job = Job(uuid.uuid4().hex[:10], title, link=link)

        def run() -> None:
            try:
                job.result = work(job)
                job.status = "Succeeded" if job.status == "Running" else job.status
            except Exception as exc:  # noqa: BLE001 - shown on the job's page
                job.message = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                job.status = "Failed"
            finally:
                job.ended = time.time()

        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=run, name=f"ui-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise LookupError(f"no job {job_id} (jobs live as long as the dashboard process)") from None

    def recent(self, count: int = 10) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda job: job.started, reverse=True)[:count]
