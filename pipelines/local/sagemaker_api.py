"""The local SageMaker API: the operations this project calls, with boto3's request/response shapes.

``SageMakerAPI(home).handle(operation, params)`` takes an operation name and its parameters as
botocore sends them (``CreateModelPackage``, ``{"ModelPackageGroupName": ...}``) and returns the
response dict boto3 would hand back (timestamps as aware datetimes; ``InvokeEndpoint`` bodies as
bytes). Errors are :class:`ApiError` with AWS's codes and messages. The HTTP server and the
in-process botocore transport both wrap this one dispatcher.

Endpoints: CreateEndpoint / UpdateEndpoint deploy through :class:`EndpointBackend` (the local
endpoint processes) on a background thread, as SageMaker does asynchronously; the call waits up
to ``endpoint_sync_timeout_s`` for the deployment, so locally a waiter usually sees ``InService``
on its first DescribeEndpoint. A failed create leaves ``Failed`` + FailureReason; a failed update
keeps the old config ``InService`` with the FailureReason, like SageMaker's rollback. An update with
a ``DeploymentConfig`` is a blue/green update (canary / linear / all-at-once shifting with baking);
its ``AutoRollbackConfiguration`` alarms are evaluated on the local CloudWatch, which the endpoints
feed with SageMaker's invocation metrics. The fleet an update retires stays warm for
``CONTINUUM_LOCAL_STANDBY_SECONDS`` (default 3600), so updating back to it (a rollback) takes seconds.

CloudWatch (metrics, metric alarms) and Application Auto Scaling (scalable targets, policies) are
answered here too (``MONITORING_OPERATIONS``), so steps that guard or monitor an endpoint run
unchanged against the local stand-ins.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pipelines.local.autoscaling import LocalAutoScaling
from pipelines.local.cloudwatch import LocalCloudWatch
from pipelines.local.executions import pid_alive
from pipelines.local.registry import ACCOUNT_ID, ApiError, ModelRegistry, to_datetime, to_epoch, validation_error
from pipelines.local.s3 import LocalS3
from pipelines.local.traffic_shift import TrafficShift

log = logging.getLogger(__name__)

MAX_INVOKE_BYTES = 6 * 1024 * 1024
DEFAULT_PAGE_SIZE = 10
RUNTIME_OPERATIONS = ("InvokeEndpoint",)
STANDBY_VARIABLE, DEFAULT_STANDBY_SECONDS = "CONTINUUM_LOCAL_STANDBY_SECONDS", 3600.0
# Operations of other services the local API also answers (deploy alarms, monitoring, auto scaling).
MONITORING_OPERATIONS = {
    "cloudwatch": {"PutMetricData": "put_metric_data", "GetMetricStatistics": "get_metric_statistics",
                   "PutMetricAlarm": "put_metric_alarm", "DescribeAlarms": "describe_alarms",
                   "DeleteAlarms": "delete_alarms"},
    "application-autoscaling": {"RegisterScalableTarget": "register_scalable_target",
                                "DeregisterScalableTarget": "deregister_scalable_target",
                                "DescribeScalableTargets": "describe_scalable_targets",
                                "PutScalingPolicy": "put_scaling_policy",
                                "DescribeScalingPolicies": "describe_scaling_policies"},
}


def standby_seconds() -> float:
    """How long local endpoints keep a retired fleet warm for a rollback (``CONTINUUM_LOCAL_STANDBY_SECONDS``,
    default one hour; 0 stops it at once, as SageMaker does)."""
    raw = os.environ.get(STANDBY_VARIABLE, str(DEFAULT_STANDBY_SECONDS))
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{STANDBY_VARIABLE}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{STANDBY_VARIABLE} must be ≥ 0, got {raw}")
    return value


def service_of(operation: str) -> str:
    """The botocore service an operation of the local API belongs to."""
    if operation in RUNTIME_OPERATIONS:
        return "sagemaker-runtime"
    return next((service for service, ops in MONITORING_OPERATIONS.items() if operation in ops), "sagemaker")


class EndpointBackend(Protocol):
    """What the API needs from the local endpoint manager (``pipelines.local.endpoints.LocalEndpoints``)."""

    def deploy(self, endpoint_name: str, variants: list[dict], data_capture: dict | None, *,
               shift: TrafficShift | None = None) -> None: ...

    def invoke(self, endpoint_name: str, body: bytes, content_type: str, accept: str,
               custom_attributes: str | None) -> tuple[bytes, str, str]: ...

    def delete(self, endpoint_name: str) -> None: ...


@functools.lru_cache(maxsize=None)
def service_model(service: str) -> Any:
    """botocore's model of ``service`` (``sagemaker`` / ``sagemaker-runtime``), loaded once."""
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _camel(field: str) -> str:
    return field[0].lower() + field[1:]


def validate_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Required members and top-level enum values, with AWS's ValidationException wording."""
    try:
        op_model = service_model(service).operation_model(operation)
    except Exception as exc:  # botocore raises OperationNotFoundError
        raise ApiError("UnknownOperationException",
                       f"Operation {operation} is not supported by the local SageMaker stand-in") from exc
    shape = op_model.input_shape
    if shape is None:
        return
    problems = [
        f"Value null at '{_camel(name)}' failed to satisfy constraint: Member must not be null"
        for name in shape.required_members if params.get(name) is None
    ]
    for name, member in shape.members.items():
        value = params.get(name)
        if value is not None and member.type_name == "string" and member.enum and value not in member.enum:
            problems.append(
                f"Value {value!r} at '{_camel(name)}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(member.enum)}]"
            )
    if problems:
        count = len(problems)
        raise validation_error(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems))


def paginate(items: list[dict], params: dict[str, Any], key: str, token_key: str = "NextToken") -> dict[str, Any]:
    """One page of ``items`` per ``MaxResults`` / ``NextToken`` as ``{key: page[, NextToken]}``."""
    size = params.get("MaxResults") or DEFAULT_PAGE_SIZE
    if not isinstance(size, int) or not 1 <= size <= 100:
        raise validation_error(f"MaxResults must be an integer from 1 to 100, got {size!r}")
    token = params.get(token_key)
    start = 0
    if token:
        try:
            start = int(str(token).removeprefix("local-page-"))
        except ValueError:
            raise validation_error(f"Invalid pagination token {token!r}") from None
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out[token_key] = f"local-page-{start + size}"
    return out


def _time_filter(items: list[dict], params: dict[str, Any], field: str = "CreationTime",
                 prefix: str = "CreationTime") -> list[dict]:
    after, before = params.get(f"{prefix}After"), params.get(f"{prefix}Before")
    if after is not None:
        items = [i for i in items if i[field].timestamp() > to_epoch(after)]
    if before is not None:
        items = [i for i in items if i[field].timestamp() < to_epoch(before)]
    return items


def _sorted(items: list[dict], params: dict[str, Any], keys: dict[str, Callable[[dict], Any]],
            default_by: str, default_order: str) -> list[dict]:
    by = params.get("SortBy") or default_by
    order = params.get("SortOrder") or default_order
    return sorted(items, key=keys[by], reverse=order == "Descending")


class SageMakerAPI:
    """Dispatcher for the SageMaker (and sagemaker-runtime) operations the project uses."""

    def __init__(self, home: Path, region: str = "us-east-1", *, endpoints: EndpointBackend | None = None,
                 s3: LocalS3 | None = None, endpoint_sync_timeout_s: float = 45.0) -> None:
        self.home = Path(home)
        self.region = region
        self.account_id = ACCOUNT_ID
        self.registry = ModelRegistry(self.home / "registry.sqlite", region, self.account_id)
        self.s3 = s3 or LocalS3(self.home / "s3")
        self._endpoints = endpoints
        self.endpoint_sync_timeout_s = endpoint_sync_timeout_s
        self._deployments: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self.cloudwatch = LocalCloudWatch(self.home, region)
        self.autoscaling = LocalAutoScaling(self.home, region)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            name: getattr(self, "_" + name) for name in OPERATIONS
        }
        for service, operations in MONITORING_OPERATIONS.items():
            target = self.cloudwatch if service == "cloudwatch" else self.autoscaling
            self._handlers.update({name: getattr(target, method) for name, method in operations.items()})

    @property
    def endpoints(self) -> EndpointBackend:
        with self._lock:
            if self._endpoints is None:
                from pipelines.local.endpoints import LocalEndpoints

                self._endpoints = LocalEndpoints(self.home, self.s3, metrics=self.cloudwatch,
                                                 standby_seconds=standby_seconds())
            return self._endpoints

    def handle(self, operation: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run ``operation`` with ``params``; the boto3-shaped response, or :class:`ApiError`."""
        params = dict(params or {})
        service = service_of(operation)
        handler = self._handlers.get(operation)
        if handler is None:
            raise ApiError("UnknownOperationException",
                           f"Operation {operation} is not supported by the local SageMaker stand-in")
        if service != "sagemaker-runtime":
            validate_request(service, operation, params)
        return handler(params)

    # -- model package groups -------------------------------------------------------------------
    def _CreateModelPackageGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        arn = self.registry.create_model_package_group(
            p["ModelPackageGroupName"], p.get("ModelPackageGroupDescription"), p.get("Tags"))
        return {"ModelPackageGroupArn": arn}

    def _DescribeModelPackageGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.registry.describe_model_package_group(p["ModelPackageGroupName"])

    def _ListModelPackageGroups(self, p: dict[str, Any]) -> dict[str, Any]:
        groups = self.registry.list_model_package_groups()
        if p.get("NameContains"):
            groups = [g for g in groups if p["NameContains"] in g["ModelPackageGroupName"]]
        groups = _time_filter(groups, p)
        groups = _sorted(groups, p, {"Name": lambda g: g["ModelPackageGroupName"],
                                     "CreationTime": lambda g: g["CreationTime"]}, "CreationTime", "Ascending")
        summaries = [{k: v for k, v in g.items() if k != "CreatedBy"} for g in groups]
        return paginate(summaries, p, "ModelPackageGroupSummaryList")

    # -- model packages -------------------------------------------------------------------------
    def _CreateModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ModelPackageArn": self.registry.create_model_package(p)}

    def _package_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        group, _, version = name_or_arn.rpartition("/")
        if group and version.isdigit():
            return self.registry.arn("model-package", name_or_arn)
        raise validation_error(f"ModelPackage {self.registry.arn('model-package', name_or_arn)} does not exist.")

    def _DescribeModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.registry.describe_model_package(self._package_arn(p["ModelPackageName"]))

    def _ListModelPackages(self, p: dict[str, Any]) -> dict[str, Any]:
        group = p.get("ModelPackageGroupName")
        # SageMaker's documented default type is Unversioned, which this registry never holds.
        package_type = p.get("ModelPackageType") or ("Both" if group else "Unversioned")
        packages = [] if package_type == "Unversioned" else self.registry.list_model_packages(
            group, p.get("ModelApprovalStatus"))
        if p.get("NameContains"):
            packages = [m for m in packages if p["NameContains"] in m["ModelPackageName"]]
        packages = _time_filter(packages, p)
        packages = _sorted(packages, p, {
            "CreationTime": lambda m: (m["CreationTime"], m["ModelPackageVersion"]),
            "Name": lambda m: (m["ModelPackageName"], m["ModelPackageVersion"]),
        }, "CreationTime", "Ascending")
        fields = ("ModelPackageName", "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                  "ModelPackageDescription", "CreationTime", "ModelPackageStatus", "ModelApprovalStatus")
        summaries = [{f: m[f] for f in fields if f in m} for m in packages]
        return paginate(summaries, p, "ModelPackageSummaryList")

    def _UpdateModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        arn = self._package_arn(p["ModelPackageArn"])
        return {"ModelPackageArn": self.registry.update_model_package(arn, p)}

    # -- models and endpoint configs ------------------------------------------------------------
    def _CreateModel(self, p: dict[str, Any]) -> dict[str, Any]:
        for container in [p.get("PrimaryContainer")] + list(p.get("Containers") or []):
            if container and container.get("ModelPackageName"):
                self.registry.describe_model_package(self._package_arn(container["ModelPackageName"]))
        return {"ModelArn": self.registry.create_model(p)}

    def _DescribeModel(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.registry.describe_model(p["ModelName"])

    def _DeleteModel(self, p: dict[str, Any]) -> dict[str, Any]:
        self.registry.delete_model(p["ModelName"])
        return {}

    def _CreateEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointConfigArn": self.registry.create_endpoint_config(p)}

    def _DescribeEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.registry.describe_endpoint_config(p["EndpointConfigName"])

    def _DeleteEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        self.registry.delete_endpoint_config(p["EndpointConfigName"])
        return {}

    def resolve_variants(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The config's ProductionVariants, each with its model's Image, ModelDataUrl and Environment, and
        the EndpointConfigName (which names the fleet in the endpoint's metrics)."""
        resolved = []
        for variant in config["ProductionVariants"]:
            model = self.registry.describe_model(variant["ModelName"])
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            source = container
            if container.get("ModelPackageName"):
                package = self.registry.describe_model_package(self._package_arn(container["ModelPackageName"]))
                source = package["InferenceSpecification"]["Containers"][0]
            model_data = source.get("ModelDataUrl") or (
                source.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri"))
            resolved.append({
                "InitialInstanceCount": 1, "InitialVariantWeight": 1.0, **variant,
                "Image": source.get("Image", ""),
                "ModelDataUrl": model_data,
                "EndpointConfigName": config["EndpointConfigName"],
                "Environment": {**source.get("Environment", {}), **container.get("Environment", {})},
            })
        return resolved

    # -- endpoints ------------------------------------------------------------------------------
    def _CreateEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name, config_name = p["EndpointName"], p["EndpointConfigName"]
        config = self.registry.describe_endpoint_config(config_name)
        variants = self.resolve_variants(config)
        backend = self.endpoints
        spec = {"DeploymentConfig": p.get("DeploymentConfig"), "DeployingPid": os.getpid()}
        arn = self.registry.create_endpoint(name, config_name, spec)

        def succeeded() -> None:
            self.registry.set_endpoint_state(name, "InService", config_name=config_name,
                                             spec={"DeploymentConfig": p.get("DeploymentConfig")})

        def failed(exc: Exception) -> None:
            self.registry.set_endpoint_state(name, "Failed", failure_reason=_reason(exc),
                                             spec={"DeploymentConfig": p.get("DeploymentConfig")})

        self._deploy_in_background(backend, name, variants, config.get("DataCaptureConfig"), succeeded, failed)
        return {"EndpointArn": arn}

    def _UpdateEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name, config_name = p["EndpointName"], p["EndpointConfigName"]
        row = self._endpoint_row(name)
        if row["status"] == "Failed":
            raise validation_error(f'Cannot update failed endpoint "{row["arn"]}": delete it and create it again.')
        if row["status"] != "InService":
            raise validation_error(f'Cannot update in-progress endpoint "{row["arn"]}".')
        config = self.registry.describe_endpoint_config(config_name)
        variants = self.resolve_variants(config)
        backend = self.endpoints
        old_config = row["config_name"]
        deployment = row["spec"].get("DeploymentConfig") if p.get("RetainDeploymentConfig") else p.get(
            "DeploymentConfig")
        instances = sum(int(v.get("InitialInstanceCount", 1)) for v in variants)
        try:
            shift = TrafficShift.from_deployment_config(deployment, instances, self._tripped_alarms)
        except ValueError as exc:
            raise validation_error(f"DeploymentConfig: {exc}") from exc
        self.registry.set_endpoint_state(name, "Updating", spec={
            "DeploymentConfig": deployment, "PendingConfigName": config_name, "DeployingPid": os.getpid(),
            "UpdateStartTime": to_epoch(datetime.now().astimezone())})

        def succeeded() -> None:
            self.registry.set_endpoint_state(name, "InService", config_name=config_name,
                                             spec={"DeploymentConfig": deployment})

        def failed(exc: Exception) -> None:
            self.registry.set_endpoint_state(name, "InService", config_name=old_config,
                                             failure_reason=_reason(exc), spec={"DeploymentConfig": deployment})

        self._deploy_in_background(backend, name, variants, config.get("DataCaptureConfig"), succeeded, failed, shift)
        return {"EndpointArn": row["arn"]}

    def _tripped_alarms(self, names: list[str]) -> list[str]:
        return [alarm["AlarmName"] for alarm in self.cloudwatch.alarms_in_alarm(names)]

    def _deploy_in_background(self, backend: EndpointBackend, name: str, variants: list[dict],
                              data_capture: dict | None, succeeded: Callable[[], None],
                              failed: Callable[[Exception], None], shift: TrafficShift | None = None) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                if shift is None:
                    backend.deploy(name, variants, data_capture)
                else:
                    backend.deploy(name, variants, data_capture, shift=shift)
            except Exception as exc:  # any deployment failure becomes the endpoint's FailureReason
                log.warning("deploying endpoint %s failed: %s", name, exc)
                failed(exc)
            else:
                succeeded()
            finally:
                done.set()

        thread = threading.Thread(target=run, name=f"deploy-{name}", daemon=True)
        with self._lock:
            self._deployments[name.lower()] = thread
        thread.start()
        done.wait(self.endpoint_sync_timeout_s)

    def wait_for_deployments(self, timeout_s: float | None = None) -> None:
        """Block until this process's background deployments finish (for clean shutdown and tests)."""
        with self._lock:
            threads = list(self._deployments.values())
        for thread in threads:
            thread.join(timeout_s)

    def _endpoint_row(self, name: str) -> dict[str, Any]:
        row = self.registry.endpoint_row(name)
        pid = row["spec"].get("DeployingPid")
        if row["status"] in ("Creating", "Updating") and pid and not _process_alive(pid):
            # The process that was deploying exited: the deployment can never finish.
            reason = f"the local process ({pid}) deploying this endpoint exited before it was InService"
            if row["status"] == "Creating":
                self.registry.set_endpoint_state(name, "Failed", failure_reason=reason, spec={})
            else:
                self.registry.set_endpoint_state(name, "InService", failure_reason=reason,
                                                 spec={"DeploymentConfig": row["spec"].get("DeploymentConfig")})
            row = self.registry.endpoint_row(name)
        return row

    def _DescribeEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        row = self._endpoint_row(p["EndpointName"])
        out: dict[str, Any] = {
            "EndpointName": row["name"], "EndpointArn": row["arn"], "EndpointConfigName": row["config_name"],
            "EndpointStatus": row["status"], "CreationTime": to_datetime(row["creation_time"]),
            "LastModifiedTime": to_datetime(row["last_modified_time"]),
        }
        if row["failure_reason"]:
            out["FailureReason"] = row["failure_reason"]
        spec = row["spec"]
        if spec.get("DeploymentConfig"):
            out["LastDeploymentConfig"] = spec["DeploymentConfig"]
        if row["status"] != "Creating":
            config = self.registry.describe_endpoint_config(row["config_name"])
            out["ProductionVariants"] = [_variant_summary(v, row) for v in self.resolve_variants(config)]
            capture = config.get("DataCaptureConfig")
            if capture:
                enabled = capture.get("EnableCapture", True)
                out["DataCaptureConfig"] = {
                    "EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped",
                    "CurrentSamplingPercentage": capture.get("InitialSamplingPercentage", 100),
                    "DestinationS3Uri": capture.get("DestinationS3Uri", ""),
                    **({"KmsKeyId": capture["KmsKeyId"]} if capture.get("KmsKeyId") else {}),
                }
        if row["status"] == "Updating" and spec.get("PendingConfigName"):
            out["PendingDeploymentSummary"] = {"EndpointConfigName": spec["PendingConfigName"],
                                               "StartTime": to_datetime(spec.get("UpdateStartTime", row["last_modified_time"]))}
        return out

    def _ListEndpoints(self, p: dict[str, Any]) -> dict[str, Any]:
        rows = self.registry.list_endpoint_rows()
        summaries = [{"EndpointName": r["name"], "EndpointArn": r["arn"], "CreationTime": to_datetime(r["creation_time"]),
                      "LastModifiedTime": to_datetime(r["last_modified_time"]), "EndpointStatus": r["status"]} for r in rows]
        if p.get("NameContains"):
            summaries = [s for s in summaries if p["NameContains"].lower() in s["EndpointName"].lower()]
        if p.get("StatusEquals"):
            summaries = [s for s in summaries if s["EndpointStatus"] == p["StatusEquals"]]
        summaries = _time_filter(summaries, p)
        summaries = _time_filter(summaries, p, "LastModifiedTime", "LastModifiedTime")
        summaries = _sorted(summaries, p, {"Name": lambda s: s["EndpointName"],
                                           "CreationTime": lambda s: s["CreationTime"],
                                           "Status": lambda s: s["EndpointStatus"]}, "CreationTime", "Descending")
        return paginate(summaries, p, "Endpoints")

    def _DeleteEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        row = self.registry.endpoint_row(name)
        with self._lock:
            thread = self._deployments.pop(row["name"].lower(), None)
        if thread is not None:
            thread.join()
        try:
            self.endpoints.delete(row["name"])
        except Exception as exc:  # the record goes regardless, as on SageMaker
            log.warning("stopping local endpoint %s: %s", name, exc)
        self.registry.delete_endpoint(name)
        return {}

    # -- sagemaker-runtime ----------------------------------------------------------------------
    def _InvokeEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p.get("EndpointName")
        body = p.get("Body")
        if not name or body is None:
            raise ApiError("ValidationError", "EndpointName and Body are required")
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            row = self._endpoint_row(name)
        except ApiError:
            row = None
        if row is None or row["status"] not in ("InService", "Updating"):
            raise ApiError("ValidationError", f"Endpoint {name} of account {self.account_id} not found.")
        if len(body) > MAX_INVOKE_BYTES:
            raise ApiError("ValidationError",
                           f"Request body of {len(body)} bytes exceeds the {MAX_INVOKE_BYTES}-byte payload limit")
        content_type = p.get("ContentType") or "application/octet-stream"
        accept = p.get("Accept") or "*/*"
        try:
            out_body, out_type, variant = self.endpoints.invoke(
                row["name"], body, content_type, accept, p.get("CustomAttributes"))
        except LookupError as exc:  # the endpoint's serving processes are gone
            raise ApiError("ValidationError", f"Endpoint {name} of account {self.account_id} not found.") from exc
        except Exception as exc:  # the model (or its server) failed: SageMaker's ModelError, HTTP 424
            status = getattr(exc, "status", 500)
            original = getattr(exc, "body", None)
            text = original.decode("utf-8", "replace") if isinstance(original, bytes) else str(exc)
            message = str(exc) if str(exc).startswith("Received ") else (
                f'Received server error ({status}) from primary with message "{exc}".')
            raise ApiError("ModelError", message, status=424, OriginalStatusCode=status,
                           OriginalMessage=text) from exc
        return {"Body": out_body, "ContentType": out_type, "InvokedProductionVariant": variant}


OPERATIONS = (
    "CreateModelPackageGroup", "DescribeModelPackageGroup", "ListModelPackageGroups",
    "CreateModelPackage", "DescribeModelPackage", "ListModelPackages", "UpdateModelPackage",
    "CreateModel", "DescribeModel", "DeleteModel",
    "CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig",
    "CreateEndpoint", "UpdateEndpoint", "DescribeEndpoint", "ListEndpoints", "DeleteEndpoint",
    "InvokeEndpoint",
)


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:1024]


def _process_alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)


def _variant_summary(variant: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    count = variant.get("InitialInstanceCount", 1)
    weight = float(variant.get("InitialVariantWeight", 1.0))
    return {
        "VariantName": variant["VariantName"],
        "DeployedImages": [{"SpecifiedImage": variant["Image"], "ResolvedImage": variant["Image"],
                            "ResolutionTime": to_datetime(row["last_modified_time"])}] if variant.get("Image") else [],
        "CurrentWeight": weight, "DesiredWeight": weight,
        "CurrentInstanceCount": count, "DesiredInstanceCount": count,
    }
