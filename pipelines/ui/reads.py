"""What the dashboard shows, read through the SageMaker, S3 and CloudWatch APIs (AWS's or the local stand-ins).

One function per screen section; each returns plain dicts and lists for the templates. Registered evaluation
files never change, so they are cached by URI.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import Config

REPORT_SUFFIX = "/PrepareData/output/report/report.json"
_CACHE_LIMIT = 512


@dataclass(frozen=True)
class CachingBackend(Backend):
    """A Backend whose clients are made once (boto3 clients are thread-safe; making one costs milliseconds)."""

    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, compare=False, repr=False)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service)
            return self._clients[service]


def caching(backend: Backend) -> CachingBackend:
    return CachingBackend(backend.kind, backend.session, backend.home)


_json_cache: dict[str, Any] = {}


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_json(s3: Any, uri: str, cache: bool = False) -> Any:
    """The JSON object at ``uri`` (None when it does not exist); ``cache`` for files that never change."""
    if cache and uri in _json_cache:
        return _json_cache[uri]
    bucket, key = split_uri(uri)
    try:
        value = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        value = None
    if cache:
        if len(_json_cache) > _CACHE_LIMIT:
            _json_cache.clear()
        _json_cache[uri] = value
    return value


def read_jsonl(s3: Any, uri: str, limit: int | None = None) -> list[dict[str, Any]]:
    bucket, key = split_uri(uri)
    try:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return []
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows[:limit] if limit is not None else rows


def list_keys(s3: Any, uri: str) -> list[dict[str, Any]]:
    """Every object under an s3:// prefix ({"Key", "LastModified", ...}); none when the bucket is missing."""
    bucket, prefix = split_uri(uri)
    try:
        return [item for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])]
    except s3.exceptions.NoSuchBucket:
        return []


# ---- runs ---------------------------------------------------------------------------------------------------

def pipeline_names(config: Config) -> list[str]:
    from pipelines.deploy.monitor_pipeline import monitor_pipeline_name

    return [config.training_pipeline_name, config.deploy_pipeline_name, monitor_pipeline_name(config)]


def _aws_executions(backend: Backend, config: Config, count: int) -> list[dict[str, Any]]:
    sagemaker = backend.client("sagemaker")
    records = []
    for name in pipeline_names(config):
        try:
            summaries = sagemaker.list_pipeline_executions(PipelineName=name, SortBy="CreationTime",
                                                          SortOrder="Descending", MaxResults=count)
        except ClientError as error:  # a pipeline never upserted (moto says ValidationException)
            if error.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException"):
                continue
            raise
        for item in summaries.get("PipelineExecutionSummaries", []):
            records.append({"pipeline_name": name, "execution_id": item["PipelineExecutionArn"],
                            "status": item.get("PipelineExecutionStatus", ""),
                            "started": str(item.get("StartTime", "")), "failure_reason": item.get("PipelineExecutionFailureReason")})
    return sorted(records, key=lambda r: r["started"], reverse=True)[:count]


def executions(backend: Backend, config: Config, count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` pipeline executions, newest first (locally the runtime's execution records)."""
    if not backend.is_local:
        return _aws_executions(backend, config, count)
    records = list(reversed(backend.recent_executions(count)))
    for record in records:
        steps = record.get("steps", [])
        record.setdefault("started", min((s["started"] for s in steps if s.get("started")), default=""))
        record["seconds"] = round(sum(float(s.get("seconds") or 0) for s in steps), 1)
        failed = [s for s in steps if s.get("status") == "Failed"]
        record.setdefault("failure_reason", failed[0].get("failure_reason") if failed else None)
    return records


def _graph_levels(definition: dict[str, Any]) -> dict[str, int]:
    """Each step's depth in the definition's graph (DependsOn and property references)."""
    every: dict[str, dict[str, Any]] = {}
    nested: dict[str, str] = {}  # a condition's branch step -> the condition

    def walk(items: list[dict[str, Any]], parent: str | None) -> None:
        for step in items:
            every[step["Name"]] = step
            if parent:
                nested[step["Name"]] = parent
            for branch in ("IfSteps", "ElseSteps"):
                walk(step.get("Arguments", {}).get(branch, []), step["Name"])

    walk(definition.get("Steps", []), None)

    def parents(name: str) -> set[str]:
        step = every[name]
        found = set(step.get("DependsOn", []))
        arguments = {k: v for k, v in step.get("Arguments", {}).items() if k not in ("IfSteps", "ElseSteps")}
        text = json.dumps(arguments)
        found |= {other for other in every if other != name and f'"Steps.{other}.' in text}
        if name in nested:
            found.add(nested[name])
        return found & set(every)

    levels: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in levels:
            above = [level(p, seen | {name}) for p in parents(name) if p not in seen]
            levels[name] = 1 + max(above, default=-1)
        return levels[name]

    for name in every:
        level(name)
    return levels


def execution_detail(backend: Backend, config: Config, pipeline: str, execution_id: str) -> dict[str, Any]:
    """One execution: its steps (status, duration, failure reason, log tail) and their graph levels."""
    if not backend.is_local:
        sagemaker = backend.client("sagemaker")
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_id)
        steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=execution_id)["PipelineExecutionSteps"]
        definition = json.loads(sagemaker.describe_pipeline_definition_for_execution(
            PipelineExecutionArn=execution_id)["PipelineDefinition"])
        rows = [{"name": s["StepName"], "status": s["StepStatus"], "failure_reason": s.get("FailureReason"),
                 "seconds": (s["EndTime"] - s["StartTime"]).total_seconds() if s.get("EndTime") and s.get("StartTime")
                 else None, "log": "CloudWatch Logs: /aws/sagemaker/ProcessingJobs or TrainingJobs"} for s in steps]
        return {"pipeline_name": pipeline, "execution_id": execution_id,
                "status": described["PipelineExecutionStatus"], "failure_reason": described.get("FailureReason"),
                "parameters": {}, "steps": rows, "levels": _graph_levels(definition)}
    assert backend.home is not None
    folder = backend.home / "executions" / pipeline / execution_id
    if ".." in pipeline or ".." in execution_id or not (folder / "execution.json").is_file():
        raise LookupError(f"no execution {execution_id} of {pipeline}")
    record = json.loads((folder / "execution.json").read_text(encoding="utf-8"))
    definition_path = folder / "definition.json"
    definition = json.loads(definition_path.read_text(encoding="utf-8")) if definition_path.is_file() else {}
    rows = []
    for step in record.get("steps", []):
        log_path = (step.get("metadata") or {}).get("log")
        tail = ""
        if log_path:
            try:
                tail = "\n".join(open(log_path, encoding="utf-8", errors="replace").read().splitlines()[-40:])
            except OSError:
                tail = ""
        rows.append({**step, "log": tail})
    levels = _graph_levels(definition)
    recorded = {row["name"] for row in rows}
    rows += [{"name": name, "type": "", "status": "NotExecuted", "seconds": None, "log": ""}
             for name in sorted(levels, key=lambda n: levels[n]) if name not in recorded]  # the branches not taken
    failed = [s for s in rows if s.get("status") == "Failed"]
    return {**record, "steps": rows, "levels": levels,
            "failure_reason": record.get("failure_reason") or (failed[0].get("failure_reason") if failed else None)}


# ---- data ---------------------------------------------------------------------------------------------------

def data_versions(backend: Backend, config: Config) -> list[dict[str, Any]]:
    """Each prepare run's report (newest first): counts, quarantine reasons, what changed, a sample."""
    s3 = backend.client("s3")
    root = f"s3://{config.project.bucket}/{config.training_pipeline_name}/"
    found = sorted((item for item in list_keys(s3, root) if item["Key"].endswith(REPORT_SUFFIX)),
                   key=lambda item: item["LastModified"], reverse=True)
    versions = []
    seen: set[str] = set()
    for item in found:
        uri = f"s3://{config.project.bucket}/{item['Key']}"
        report = read_json(s3, uri, cache=True)
        if not report or report.get("data_version") in seen:
            continue
        seen.add(report["data_version"])
        versions.append({"uri": uri, "quarantine_uri": uri.rsplit("/", 1)[0] + "/quarantine.jsonl",
                         "execution_id": item["Key"].split("/")[-6], "at": str(item["LastModified"])[:19],
                         **report})
    return versions


# ---- deploy and monitoring ------------------------------------------------------------------------------------

def alarms(backend: Backend, config: Config) -> list[dict[str, Any]]:
    """CloudWatch alarms of the project's endpoints (the fleets' guardrails and the monitor's violation alarm)."""
    from pipelines.deploy.stages import stages

    cloudwatch = backend.client("cloudwatch")
    rows = []
    prefixes = [stage.endpoint_name for stage in stages(config)]
    for alarm in cloudwatch.describe_alarms().get("MetricAlarms", []):
        dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        text = alarm["AlarmName"] + " " + " ".join(dimensions.values())
        if any(prefix in text for prefix in prefixes) or alarm.get("Namespace") == config.deploy.monitoring.namespace:
            rows.append({"name": alarm["AlarmName"], "state": alarm.get("StateValue", ""),
                         "metric": alarm.get("MetricName", ""), "reason": alarm.get("StateReason", ""),
                         "threshold": alarm.get("Threshold")})
    return rows


def monitoring_reports(backend: Backend, config: Config, endpoint: str, count: int = 50) -> list[dict[str, Any]]:
    """The monitor's report.json files for an endpoint, oldest first (the last ``count``)."""
    s3 = backend.client("s3")
    found = [item for item in list_keys(s3, s3_layout.monitoring_reports_uri(config, endpoint) + "/")
             if item["Key"].endswith("/report.json")]
    found.sort(key=lambda item: item["LastModified"])
    reports = [read_json(s3, f"s3://{config.project.bucket}/{item['Key']}", cache=True) for item in found[-count:]]
    return sorted((r for r in reports if r), key=lambda r: str(r.get("generated_at", "")))


def _decode(part: dict[str, Any]) -> Any:
    import base64

    data = part.get("data", "")
    if part.get("encoding") == "BASE64":
        data = base64.b64decode(data).decode("utf-8", errors="replace")
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return data


def _answers(output: Any) -> list[str]:
    items = output if isinstance(output, list) else [output]
    return [item.get("generated_text", "") if isinstance(item, dict) else str(item) for item in items]


def captured_exchanges(backend: Backend, config: Config, endpoint: str, count: int = 30) -> list[dict[str, Any]]:
    """The newest captured (prompt, answer) pairs of an endpoint; a batched request gives one pair per input."""
    s3 = backend.client("s3")
    files = sorted(list_keys(s3, f"{s3_layout.data_capture_uri(config)}/{endpoint}/"),
                   key=lambda item: item["Key"], reverse=True)
    exchanges: list[dict[str, Any]] = []
    for item in files:
        bucket = config.project.bucket
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
        for line in reversed([line for line in body.splitlines() if line.strip()]):
            record = json.loads(line)
            data = record.get("captureData", {})
            request = _decode(data.get("endpointInput", {}))
            prompts = request.get("inputs") if isinstance(request, dict) else request
            prompts = prompts if isinstance(prompts, list) else [prompts]
            answers = _answers(_decode(data.get("endpointOutput", {})))
            meta = record.get("eventMetadata", {})
            for index, prompt in enumerate(prompts):
                exchanges.append({"event_id": meta.get("eventId", ""), "index": index, "endpoint": endpoint,
                                  "at": meta.get("inferenceTime", ""), "prompt": str(prompt),
                                  "answer": answers[index] if index < len(answers) else "",
                                  "capture_uri": f"s3://{bucket}/{item['Key']}"})
            if len(exchanges) >= count:
                return exchanges[:count]
    return exchanges
