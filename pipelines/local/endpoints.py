"""Local SageMaker endpoints: a detached serving process per production variant, with data capture.

Each variant runs ``containers/serving/serve.py`` (the same serving code as the image) on a free local
port, started in its own session so that it outlives the command that deployed it (one process per
variant whatever InitialInstanceCount says; invocations pick a variant by InitialVariantWeight). Everything needed
to find or restart it lives in ``$CONTINUUM_HOME/endpoints/<name>/state.json``::

    {"endpoint_name": str, "config_name": str | null, "data_capture": DataCaptureConfig | null, "updated_at": iso,
     "variants": [{"name", "weight", "instance_count", "model_data_url", "environment",
                   "model_dir", "pid", "port", "log", "started_at"}],
     "candidate": {"config_name", "data_capture", "variants": [...], "share": float},  # during blue/green only
     "standby": {"config_name", "data_capture", "variants": [...], "until": epoch}}    # a retired fleet, warm

Redeploying starts the new servers first, waits for ``/ping``, swaps ``state.json`` atomically and only
then stops the old servers (after their in-flight requests of this process finish), so traffic never
sees a gap; invocations that raced with the swap from another process are retried on the new server.
A blue/green redeploy (a :class:`~pipelines.local.traffic_shift.TrafficShift`) first routes the
``candidate`` share of the calls to the new fleet, bakes, and rolls back when a rollback alarm trips.
With ``standby_seconds`` > 0 the fleet an update retires stays up without traffic (the ``standby``) until
then or the next deployment; deploying exactly that fleet again (a rollback) swaps it back in at once.
Invocations publish SageMaker's invocation metrics (per variant and per fleet) to a metrics sink.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.local.capture import CaptureWriter, Exchange, Sampler, build_capture_record, capture_enabled, capture_modes
from pipelines.local.fleets import all_variants, reusable_standby
from pipelines.local.traffic_shift import DeploymentRolledBack, TrafficShift

if TYPE_CHECKING:
    from pipelines.local.s3 import LocalS3

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "containers" / "serving" / "serve.py"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
LOG_TAIL_CHARS = 4000
# Started through a short-lived launcher so the server is not our child: it outlives this process
# cleanly (no zombie left in a long-running parent, nothing to reap) like a real detached daemon.
LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "server = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,"
    " start_new_session=True)\n"
    "print(server.pid)\n"
)
INVOCATION_NAMESPACE = "AWS/SageMaker"
log = logging.getLogger(__name__)
RETRYABLE = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, http.client.IncompleteRead)



def ping(port: int, timeout: float = 2.0) -> bool:
    """Whether a serving process answers GET /ping with 200 on 127.0.0.1:`port`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()

class MetricsSink(Protocol):
    """Where invocation metrics go (``pipelines.local.cloudwatch.LocalCloudWatch``)."""

    def record(self, namespace: str, datapoints: list[tuple[str, list[dict[str, str]], float, str]],
               when: float | None = None) -> None: ...


class EndpointNotFoundError(LookupError):
    """No endpoint of that name is deployed locally."""


class EndpointStartError(RuntimeError):
    """A serving process did not come up (the message holds its log tail)."""


class ModelInvocationError(RuntimeError):
    """The model container answered with an error status (SageMaker's ModelError)."""

    def __init__(self, status: int, body: bytes, variant: str, log: str) -> None:
        kind = "client" if 400 <= status < 500 else "server"
        text = body.decode("utf-8", errors="replace")
        super().__init__(f'Received {kind} error ({status}) from {variant} with message "{text}". See {log}')
        self.status = status
        self.body = body
        self.variant = variant
        self.log = log


def check_name(kind: str, name: str) -> None:
    """SageMaker's name rule for endpoints and variants."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"{kind} {name!r} must match {NAME_PATTERN.pattern} (letters, digits, hyphens; ≤ 63)")


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a model archive, refusing members that would land outside ``dest`` or are not files/links/folders;
    a damaged archive is a ValueError naming it."""
    try:
        _safe_extract(archive, dest)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as exc:  # EOFError: truncated .gz
        raise ValueError(f"{archive}: not a readable model archive ({exc}); the file is damaged or not a tar.gz: "
                         "upload the model again") from exc


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            parts = PurePosixPath(member.name).parts
            if member.name.startswith(("/", "\\")) or ".." in parts:
                raise ValueError(f"{archive}: member {member.name!r} would extract outside the model folder")
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise ValueError(f"{archive}: member {member.name!r} is not a regular file, folder or link")
        try:
            tar.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ValueError(f"{archive}: unsafe member refused: {exc}") from exc


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return text[-chars:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _variant_spec(raw: dict, index: int) -> dict[str, Any]:
    """Validate one ProductionVariant-like dict into the fields a local server needs."""
    where = f"variants[{index}]"
    for key in ("VariantName", "ModelDataUrl"):
        if not raw.get(key):
            raise ValueError(f"{where}.{key} is required")
    check_name(f"{where}.VariantName", raw["VariantName"])
    environment = raw.get("Environment") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
        raise ValueError(f"{where}.Environment must map strings to strings")
    weight = float(raw.get("InitialVariantWeight", 1.0))
    if weight < 0:
        raise ValueError(f"{where}.InitialVariantWeight must be ≥ 0, got {weight}")
    return {"name": raw["VariantName"], "weight": weight, "instance_count": int(raw.get("InitialInstanceCount", 1)),
            "model_data_url": raw["ModelDataUrl"], "environment": dict(environment)}


def _check_data_capture(data_capture: dict | None) -> None:
    if data_capture is None or not capture_enabled(data_capture):
        return
    capture_modes(data_capture)  # raises on unknown modes
    destination = data_capture.get("DestinationS3Uri", "")
    if not str(destination).startswith("s3://"):
        raise ValueError(f"DataCaptureConfig.DestinationS3Uri must be an s3:// URI, got {destination!r}")
    percent = data_capture.get("InitialSamplingPercentage")
    if not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"DataCaptureConfig.InitialSamplingPercentage must be 0..100, got {percent!r}")


class LocalEndpoints:
    """Deploy, invoke, inspect and delete local endpoints under ``home/endpoints``."""

    def __init__(self, home: Path, s3: LocalS3, *, startup_timeout: float = 300.0, invoke_timeout: float = 60.0,
                 drain_timeout: float = 30.0, seed: int | None = None, metrics: MetricsSink | None = None,
                 standby_seconds: float = 0.0) -> None:
        self.home = Path(home).resolve()
        self.root = self.home / "endpoints"
        self.s3 = s3
        self.startup_timeout = startup_timeout
        self.invoke_timeout = invoke_timeout
        self.drain_timeout = drain_timeout
        self._rng = random.Random(seed)
        self._metrics = metrics
        self.standby_seconds = standby_seconds
        self._capture = CaptureWriter(s3)
        self._samplers: dict[tuple[str, str, float], Sampler] = {}
        self._inflight: dict[int, int] = {}
        self._lock = threading.Condition()

    # ---------------------------------------------------------------- public API
    def deploy(self, endpoint_name: str, variants: list[dict], data_capture: dict | None, *,
               shift: TrafficShift | None = None) -> None:
        """Start (or replace, without a gap) the endpoint's servers; returns once every one answers /ping.

        Replacing an endpoint with a ``shift`` is a blue/green update: the old fleet keeps serving while
        the new one warms up, then takes the shift's traffic shares one bake at a time, and the whole
        update is rolled back (:class:`DeploymentRolledBack`) when a rollback alarm trips. The variants'
        ``EndpointConfigName`` (optional) names the fleet in the invocation metrics.
        """
        check_name("EndpointName", endpoint_name)
        if not variants:
            raise ValueError("an endpoint needs at least one production variant")
        specs = [_variant_spec(v, i) for i, v in enumerate(variants)]
        names = [s["name"] for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        _check_data_capture(data_capture)
        with self._endpoint_lock(endpoint_name):
            old = self._expire_standby(endpoint_name, self._drop_stale_candidate(
                endpoint_name, self._read_state(endpoint_name)))
            try:
                for spec in specs:
                    spec["model_dir"] = str(self._materialize(endpoint_name, spec["name"], spec["model_data_url"]))
                reused = reusable_standby(old, specs, self._server_alive)
                started = reused if reused is not None else self._start_all(endpoint_name, specs)
            except BaseException:
                self._remove_unused_models(endpoint_name, old or {"variants": []})  # keeps the logs
                raise
            if reused is not None and old is not None:  # the standby is warm: it becomes the new fleet
                old = {key: value for key, value in old.items() if key != "standby"}
            config_name = next((v["EndpointConfigName"] for v in variants if v.get("EndpointConfigName")), None)
            fleet = {"config_name": config_name, "data_capture": data_capture, "variants": started}
            if old and shift is not None:
                self._shift_traffic(endpoint_name, old, fleet, shift)
            self._promote(endpoint_name, old, fleet, shift.termination_wait_seconds if old and shift else 0.0)

    def _shift_traffic(self, endpoint_name: str, old: dict, fleet: dict, shift: TrafficShift) -> None:
        """Move traffic to ``fleet`` step by step, baking after each; on a tripped alarm, back to ``old``."""
        for share in shift.steps:
            self._write_state(endpoint_name, {**old, "candidate": {**fleet, "share": share}, "updated_at": _now()})
            tripped = shift.bake()
            if tripped:
                self._write_state(endpoint_name, {**old, "updated_at": _now()})
                for variant in fleet["variants"]:
                    self._stop_server(variant)
                self._remove_unused_models(endpoint_name, old)
                raise DeploymentRolledBack(fleet["config_name"] or "the new endpoint config", tripped, share)

    def _promote(self, endpoint_name: str, old: dict | None, fleet: dict, termination_wait: float) -> None:
        """Make ``fleet`` the serving fleet. After ``termination_wait`` seconds the old one stops, or becomes the
        standby when ``standby_seconds`` > 0 (replacing, and stopping, the previous standby)."""
        state = {"endpoint_name": endpoint_name, **fleet, "updated_at": _now()}
        retiring = list(old["variants"]) if old else []
        retiring += (old or {}).get("standby", {}).get("variants", [])
        if old and self.standby_seconds > 0:
            state["standby"] = {"config_name": old.get("config_name"), "data_capture": old.get("data_capture"),
                                "variants": old["variants"], "until": time.time() + self.standby_seconds}
            retiring = retiring[len(old["variants"]):]
        self._write_state(endpoint_name, state)
        if old:
            time.sleep(termination_wait)
            for variant in retiring:
                self._stop_server(variant)
            self._remove_unused_models(endpoint_name, state)

    def _expire_standby(self, endpoint_name: str, state: dict | None) -> dict | None:
        """Stop a standby fleet whose time is up (checked whenever the endpoint is deployed)."""
        standby = (state or {}).get("standby")
        if state is None or standby is None or standby["until"] > time.time():
            return state
        for variant in standby["variants"]:
            self._stop_server(variant, drain=False)
        state = {key: value for key, value in state.items() if key != "standby"}
        self._write_state(endpoint_name, state)
        return state

    def _drop_stale_candidate(self, endpoint_name: str, state: dict | None) -> dict | None:
        """A candidate fleet left by a deployment whose process died: stop it, keep the serving fleet."""
        if not state or "candidate" not in state:
            return state
        for variant in state.pop("candidate")["variants"]:
            self._stop_server(variant, drain=False)
        self._write_state(endpoint_name, state)
        return state

    def invoke(self, endpoint_name: str, body: bytes, content_type: str, accept: str,
               custom_attributes: str | None) -> tuple[bytes, str, str]:
        """POST ``body`` to a variant's /invocations; returns (response body, content type, variant name).

        During a blue/green update the new fleet gets its current traffic share. Every call publishes
        SageMaker's invocation metrics to the metrics sink (when one is set).
        """
        inference_time = datetime.now(timezone.utc)
        started = time.perf_counter()
        last_error: Exception | None = None
        fleet: dict = {}
        variant_name = ""
        for attempt in range(3):
            state = self._require_state(endpoint_name)
            fleet = self._choose_fleet(state)
            variant = self._choose_variant(fleet)
            variant_name = variant["name"]
            if fleet is state and not self._server_alive(variant):
                state = fleet = self._restart_dead(endpoint_name)
                variant = next((v for v in state["variants"] if v["name"] == variant["name"]), None) \
                    or self._choose_variant(state)
            try:
                status, response_type, payload = self._post(variant, body, content_type, accept, custom_attributes)
            except RETRYABLE as exc:  # the server went away mid-request: a swap from another process, or a crash
                last_error = exc
                time.sleep(0.05 * (attempt + 1))
                continue
            self._publish(endpoint_name, variant["name"], fleet.get("config_name"), status,
                          time.perf_counter() - started)
            if not 200 <= status < 300:
                raise ModelInvocationError(status, payload, variant["name"], variant["log"])
            response_type = response_type or accept or "application/json"
            self._maybe_capture(endpoint_name, fleet.get("data_capture"), variant["name"],
                                Exchange(body, content_type, payload, response_type, custom_attributes), inference_time)
            return payload, response_type, variant["name"]
        self._publish(endpoint_name, variant_name, fleet.get("config_name"), 500, time.perf_counter() - started)
        raise EndpointStartError(f"endpoint {endpoint_name!r} did not answer after 3 attempts: {last_error!r}")

    def status(self, endpoint_name: str) -> dict | None:
        """``{"endpoint_name", "variant", "pid", "port", "alive", "model", "model_dir", "log", "variants": [...],
        "config_name", "data_capture", "updated_at", "candidate", "standby"}`` (top-level fields: the heaviest
        variant; ``candidate``: ``{"config_name", "share", "variants"}`` during a blue/green update, ``standby``:
        ``{"config_name", "until", "variants"}`` while a retired fleet is kept warm, else None), or None if not
        deployed."""
        state = self._read_state(endpoint_name)
        if state is None:
            return None
        variants = self._variant_status(state)
        primary = max(variants, key=lambda v: v["weight"])
        candidate, standby = state.get("candidate"), state.get("standby")
        return {"endpoint_name": endpoint_name, **primary, "variants": variants, "config_name": state.get("config_name"),
                "data_capture": state.get("data_capture"), "updated_at": state.get("updated_at"),
                "candidate": {"config_name": candidate.get("config_name"), "share": candidate["share"],
                              "variants": self._variant_status(candidate)} if candidate else None,
                "standby": {"config_name": standby.get("config_name"), "until": standby["until"],
                            "variants": self._variant_status(standby)} if standby else None}

    def _variant_status(self, fleet: dict) -> list[dict]:
        return [{"variant": v["name"], "pid": v["pid"], "port": v["port"], "alive": self._server_alive(v),
                 "model": v["model_data_url"], "model_dir": v["model_dir"], "weight": v["weight"],
                 "log": v["log"]} for v in fleet["variants"]]

    def delete(self, endpoint_name: str) -> None:
        """Stop the endpoint's servers and remove its folder (models, logs, state)."""
        with self._endpoint_lock(endpoint_name):
            state = self._require_state(endpoint_name)
            for variant in all_variants(state):
                self._stop_server(variant)
            shutil.rmtree(self._endpoint_dir(endpoint_name))

    def list_endpoints(self) -> list[str]:
        """Names of the locally deployed endpoints."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/state.json"))

    # ---------------------------------------------------------------- state
    def _endpoint_dir(self, endpoint_name: str) -> Path:
        return self.root / endpoint_name

    def _read_state(self, endpoint_name: str) -> dict | None:
        path = self._endpoint_dir(endpoint_name) / "state.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: corrupt endpoint state ({exc}); delete the folder and redeploy") from exc

    def _require_state(self, endpoint_name: str) -> dict:
        state = self._read_state(endpoint_name)
        if state is None:
            raise EndpointNotFoundError(f"Could not find endpoint \"{endpoint_name}\" (no {self.root / endpoint_name}"
                                        f"/state.json)")
        return state

    def _write_state(self, endpoint_name: str, state: dict) -> None:
        path = self._endpoint_dir(endpoint_name) / "state.json"
        tmp = path.with_name(f".state-{uuid.uuid4().hex}.json")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _endpoint_lock(self, endpoint_name: str) -> Iterator[None]:
        """Serialise deploy / restart / delete of one endpoint across threads and processes."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with (lock_dir / f"{endpoint_name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- models
    def _materialize(self, endpoint_name: str, variant: str, model_data_url: str) -> Path:
        """The model as an unpacked folder under ``endpoints/<name>/<variant>/<hash>/`` (reused when unchanged)."""
        source = self.s3.path(model_data_url)
        if source.is_dir():
            archives = [p for p in source.iterdir() if p.name != ".DS_Store"]
            if len(archives) == 1 and archives[0].name == "model.tar.gz":
                source = archives[0]
        elif not source.is_file():
            raise FileNotFoundError(f"ModelDataUrl {model_data_url} does not exist (looked at {source})")
        target = self._endpoint_dir(endpoint_name) / variant / _fingerprint(model_data_url, source)
        if target.is_dir():
            return target
        staging = target.with_name(f".staging-{uuid.uuid4().hex}")
        try:
            if source.is_dir():
                shutil.copytree(source, staging)
            elif tarfile.is_tarfile(source):
                staging.mkdir(parents=True)
                safe_extract(source, staging)
            else:
                raise ValueError(f"ModelDataUrl {model_data_url} is neither a tar archive nor a folder ({source})")
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _remove_unused_models(self, endpoint_name: str, state: dict) -> None:
        in_use = {Path(v["model_dir"]) for v in all_variants(state)}
        if not self._endpoint_dir(endpoint_name).is_dir():
            return
        for variant_dir in self._endpoint_dir(endpoint_name).iterdir():
            if not variant_dir.is_dir() or variant_dir.name.startswith("."):
                continue
            for model_dir in variant_dir.iterdir():
                if model_dir.is_dir() and model_dir.name != "logs" and model_dir not in in_use:
                    shutil.rmtree(model_dir, ignore_errors=True)

    # ---------------------------------------------------------------- processes
    def _start_all(self, endpoint_name: str, specs: list[dict]) -> list[dict]:
        """Spawn every variant's server, then wait for all of them; on failure none is left running."""
        started: list[dict] = []
        try:
            for spec in specs:
                started.append(self._spawn(endpoint_name, spec))
            for index, record in enumerate(started):
                started[index] = self._wait_ready(endpoint_name, record)
        except BaseException:
            for record in started:
                self._stop_server(record, drain=False)
            raise
        return started

    def _spawn(self, endpoint_name: str, spec: dict) -> dict:
        if not SERVE_SCRIPT.is_file():
            raise EndpointStartError(f"serving code not found at {SERVE_SCRIPT}")
        port = free_port()
        log_dir = self._endpoint_dir(endpoint_name) / spec["name"] / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"serve-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{port}.log"
        env = {**os.environ, **spec["environment"], "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, str(SERVE_SCRIPT), "--model-dir", spec["model_dir"], "--port", str(port)]
        launched = subprocess.run([sys.executable, "-c", LAUNCHER, str(log), *command], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
        if launched.returncode != 0 or not launched.stdout.strip().isdigit():
            raise EndpointStartError(f"could not launch {SERVE_SCRIPT}: {launched.stderr.strip() or launched.stdout}")
        return {**spec, "pid": int(launched.stdout), "port": port, "log": str(log), "started_at": _now()}

    def _wait_ready(self, endpoint_name: str, record: dict, port_retries: int = 2) -> dict:
        """Block until the server answers /ping 200; respawns on a lost port race, else fails with the log tail."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._alive(record["pid"]):
                tail = log_tail(Path(record["log"]))
                if "Address already in use" in tail and port_retries > 0:
                    return self._wait_ready(endpoint_name, self._spawn(endpoint_name, record), port_retries - 1)
                raise EndpointStartError(f"endpoint {endpoint_name!r} variant {record['name']!r}: serving process "
                                         f"exited during startup. Log {record['log']} ends with:\n{tail}")
            if ping(record["port"]):
                return record
            time.sleep(0.1)
        self._stop_server(record, drain=False)
        raise EndpointStartError(f"endpoint {endpoint_name!r} variant {record['name']!r}: no /ping 200 within "
                                 f"{self.startup_timeout:.0f}s. Log {record['log']} ends with:\n"
                                 f"{log_tail(Path(record['log']))}")

    def _restart_dead(self, endpoint_name: str) -> dict:
        """Restart the variants whose process is gone (e.g. after a reboot); returns the current state."""
        with self._endpoint_lock(endpoint_name):
            state = self._require_state(endpoint_name)
            dead = [i for i, v in enumerate(state["variants"]) if not self._server_alive(v)]
            if not dead:
                return state
            specs = []
            for i in dead:
                spec = {k: v for k, v in state["variants"][i].items() if k not in ("pid", "port", "log", "started_at")}
                if not Path(spec["model_dir"]).is_dir():
                    spec["model_dir"] = str(self._materialize(endpoint_name, spec["name"], spec["model_data_url"]))
                specs.append(spec)
            for i, record in zip(dead, self._start_all(endpoint_name, specs)):
                state["variants"][i] = record
            state["updated_at"] = _now()
            self._write_state(endpoint_name, state)
            return state

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # someone else's process now holds the pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
        return True

    def _server_alive(self, variant: dict) -> bool:
        """The recorded process is running, and is still our serve.py on the recorded port (pids get reused)."""
        pid = variant["pid"]
        if not self._alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc (macOS): trust the pid
        return SERVE_SCRIPT.name.encode() in b" ".join(cmdline) and str(variant["port"]).encode() in cmdline

    def _stop_server(self, variant: dict, drain: bool = True, timeout: float = 15.0) -> None:
        pid = variant["pid"]
        if drain:
            with self._lock:
                self._lock.wait_for(lambda: self._inflight.get(pid, 0) == 0, timeout=self.drain_timeout)
        if self._server_alive(variant):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self._alive(pid):
                    time.sleep(0.05)
                if not self._alive(pid):
                    break

    # ---------------------------------------------------------------- HTTP
    def _post(self, variant: dict, body: bytes, content_type: str, accept: str,
              custom_attributes: str | None) -> tuple[int, str, bytes]:
        headers = {"Content-Type": content_type or "application/json", "Accept": accept or "application/json"}
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        pid = variant["pid"]
        with self._lock:
            self._inflight[pid] = self._inflight.get(pid, 0) + 1
        connection = http.client.HTTPConnection("127.0.0.1", variant["port"], timeout=self.invoke_timeout)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()
            with self._lock:
                self._inflight[pid] -= 1
                if not self._inflight[pid]:
                    del self._inflight[pid]
                self._lock.notify_all()

    def _choose_variant(self, state: dict) -> dict:
        variants = state["variants"]
        weights = [v["weight"] for v in variants]
        if len(variants) == 1 or sum(weights) <= 0:
            return variants[0]
        with self._lock:
            return self._rng.choices(variants, weights=weights)[0]

    # ---------------------------------------------------------------- capture
    def _choose_fleet(self, state: dict) -> dict:
        """The serving fleet, or during a blue/green update the new one for its share of the calls."""
        candidate = state.get("candidate")
        if candidate:
            with self._lock:
                if self._rng.random() < candidate["share"]:
                    return candidate
        return state

    # ---------------------------------------------------------------- capture and metrics
    def _maybe_capture(self, endpoint_name: str, config: dict | None, variant: str, exchange: Exchange,
                       when: datetime) -> None:
        if config is None or not capture_enabled(config):
            return
        percent = float(config["InitialSamplingPercentage"])
        key = (endpoint_name, variant, percent)
        with self._lock:
            sampler = self._samplers.setdefault(key, Sampler(percent))
        if not sampler.take():
            return
        record = build_capture_record(config, exchange, str(uuid.uuid4()), when)
        self._capture.write(config["DestinationS3Uri"], endpoint_name, variant, record, when)

    def _publish(self, endpoint_name: str, variant: str, config_name: str | None, status: int, seconds: float) -> None:
        """SageMaker's invocation metrics for one call, per variant and per fleet (EndpointConfigName)."""
        if self._metrics is None:
            return
        base = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
        dimension_sets = [base] + ([[*base, {"Name": "EndpointConfigName", "Value": config_name}]] if config_name else [])
        values = [("Invocations", 1.0, "None"), ("Invocation4XXErrors", float(400 <= status < 500), "None"),
                  ("Invocation5XXErrors", float(status >= 500), "None"),
                  ("ModelLatency", round(seconds * 1e6), "Microseconds")]
        try:
            self._metrics.record(INVOCATION_NAMESPACE, [(name, dims, value, unit) for dims in dimension_sets
                                                        for name, value, unit in values])
        except Exception as exc:  # noqa: BLE001 - a metrics store problem must not fail the caller's request
            log.warning("could not record invocation metrics of %s: %s", endpoint_name, exc)


def _fingerprint(model_data_url: str, source: Path) -> str:
    """Changes when the URI or the artifact (size, mtime of each file) changes."""
    digest = hashlib.sha256(model_data_url.encode())
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        stat = path.stat()
        rel = path.name if path == source else path.relative_to(source).as_posix()
        digest.update(f"\0{rel}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
