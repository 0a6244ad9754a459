"""The local SageMaker control-plane store: Model Registry, models, endpoint configs, endpoints.

SQLite at ``$CONTINUUM_HOME/registry.sqlite`` (WAL, one connection per call, writes in
``BEGIN IMMEDIATE`` transactions) so threads and processes can share it. Records come back in
the shapes SageMaker's Describe/List operations return (timestamps as aware UTC datetimes);
SageMaker's rules are kept: package versions 1, 2, 3… per group, new versioned packages start
PendingManualApproval, the group must exist, names are validated, and missing or duplicate
resources raise :class:`ApiError` with the codes and messages AWS uses.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ACCOUNT_ID = "000000000000"
APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# SageMaker's CustomerMetadata pattern ([\p{L}\p{Z}\p{N}_.:\/=+\-@]*), with \w standing in for letters/digits.
_METADATA_RE = re.compile(r"^[\w .:/=+\-@]*$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY, arn TEXT NOT NULL, description TEXT, creation_time REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS model_packages (
    arn TEXT PRIMARY KEY, group_name TEXT NOT NULL, version INTEGER NOT NULL,
    approval_status TEXT NOT NULL, description TEXT, approval_description TEXT,
    creation_time REAL NOT NULL, last_modified_time REAL NOT NULL, spec TEXT NOT NULL,
    UNIQUE (group_name, version));
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, creation_time REAL NOT NULL, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint_configs (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, creation_time REAL NOT NULL, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, config_name TEXT NOT NULL,
    status TEXT NOT NULL, failure_reason TEXT, creation_time REAL NOT NULL,
    last_modified_time REAL NOT NULL, spec TEXT NOT NULL);
"""


class ApiError(Exception):
    """An error as SageMaker reports it: ``code`` (e.g. ``ValidationException``), message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def check_name(value: Any, field: str) -> str:
    """A SageMaker entity name (``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$``) or a ValidationException."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise validation_error(
            f"1 validation error detected: Value {value!r} at '{field[0].lower() + field[1:]}' failed to "
            f"satisfy constraint: Member must satisfy regular expression pattern: {_NAME_RE.pattern}"
        )
    return value


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def to_epoch(value: datetime | float | int | str) -> float:
    """A request timestamp (datetime, epoch seconds, or ISO 8601) as epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return to_epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))


class ModelRegistry:
    """SageMaker's registry and endpoint bookkeeping on one SQLite file."""

    def __init__(self, db_path: Path, region: str = "us-east-1", account_id: str = ACCOUNT_ID) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.account_id = account_id
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    # -- plumbing -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL's recommended level: durable across crashes, fewer fsyncs
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def arn(self, resource: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource}/{name}"

    @staticmethod
    def _now() -> float:
        return time.time()

    # -- model package groups -------------------------------------------------------------------
    def group_name(self, name_or_arn: str) -> str:
        """A group name from a name or ``…:model-package-group/<name>`` ARN."""
        if isinstance(name_or_arn, str) and name_or_arn.startswith("arn:"):
            return name_or_arn.split(":model-package-group/", 1)[-1]
        return name_or_arn

    def create_model_package_group(self, name: str, description: str | None = None,
                                   tags: list[dict] | None = None) -> str:
        check_name(name, "ModelPackageGroupName")
        arn = self.arn("model-package-group", name)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM model_package_groups WHERE name=?", (name,)).fetchone():
                raise validation_error(f"Model Package Group already exists: {arn}")
            conn.execute(
                "INSERT INTO model_package_groups VALUES (?,?,?,?,?)",
                (name, arn, description, self._now(), json.dumps(tags or [])),
            )
        return arn

    def describe_model_package_group(self, name_or_arn: str) -> dict[str, Any]:
        name = self.group_name(name_or_arn)
        with self._read() as conn:
            row = conn.execute("SELECT * FROM model_package_groups WHERE name=?", (name,)).fetchone()
        if row is None:
            raise validation_error(f"ModelPackageGroup {self.arn('model-package-group', name)} does not exist.")
        return self._group_record(row)

    def list_model_package_groups(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM model_package_groups ORDER BY creation_time, name").fetchall()
        return [self._group_record(row) for row in rows]

    def _group_record(self, row: sqlite3.Row) -> dict[str, Any]:
        record = {
            "ModelPackageGroupName": row["name"],
            "ModelPackageGroupArn": row["arn"],
            "CreationTime": to_datetime(row["creation_time"]),
            "ModelPackageGroupStatus": "Completed",
            "CreatedBy": {},
        }
        if row["description"] is not None:
            record["ModelPackageGroupDescription"] = row["description"]
        return record

    # -- model packages -------------------------------------------------------------------------
    def create_model_package(self, request: dict[str, Any]) -> str:
        """Register a new version in ``request["ModelPackageGroupName"]``; returns its ARN."""
        if request.get("ModelPackageName") and request.get("ModelPackageGroupName"):
            raise validation_error(
                "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
                "Cannot determine which one to use."
            )
        if not request.get("ModelPackageGroupName"):
            raise validation_error(
                "ModelPackageGroupName is required: the local registry holds versioned model packages "
                "(unversioned Marketplace packages are not supported)."
            )
        group = self.group_name(request["ModelPackageGroupName"])
        approval = request.get("ModelApprovalStatus") or "PendingManualApproval"
        _check_approval(approval)
        _check_metadata(request.get("CustomerMetadataProperties"))
        spec = {k: v for k, v in request.items() if k not in _PACKAGE_COLUMNS}
        now = self._now()
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM model_package_groups WHERE name=?", (group,)).fetchone():
                raise validation_error(
                    f"Model Package Group does not exist: {self.arn('model-package-group', group)}"
                )
            version = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name=?", (group,)
            ).fetchone()[0]
            arn = self.arn("model-package", f"{group}/{version}")
            conn.execute(
                "INSERT INTO model_packages VALUES (?,?,?,?,?,?,?,?,?)",
                (arn, group, version, approval, request.get("ModelPackageDescription"),
                 request.get("ApprovalDescription"), now, now, json.dumps(spec)),
            )
        return arn

    def describe_model_package(self, arn: str) -> dict[str, Any]:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM model_packages WHERE arn=?", (arn,)).fetchone()
        if row is None:
            raise validation_error(f"ModelPackage {arn} does not exist.")
        return self._package_record(row)

    def list_model_packages(self, group: str | None = None, approval_status: str | None = None
                            ) -> list[dict[str, Any]]:
        """Every package (optionally of one group / approval status), oldest first."""
        query, args = "SELECT * FROM model_packages WHERE 1=1", []
        if group:
            query += " AND group_name=?"
            args.append(self.group_name(group))
        if approval_status:
            _check_approval(approval_status)
            query += " AND approval_status=?"
            args.append(approval_status)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY creation_time, version", args).fetchall()
        return [self._package_record(row) for row in rows]

    def update_model_package(self, arn: str, update: dict[str, Any]) -> str:
        """Apply an UpdateModelPackage request (approval, description, metadata, inference spec)."""
        approval = update.get("ModelApprovalStatus")
        if approval is not None:
            _check_approval(approval)
        _check_metadata(update.get("CustomerMetadataProperties"))
        with self._write() as conn:
            row = conn.execute("SELECT * FROM model_packages WHERE arn=?", (arn,)).fetchone()
            if row is None:
                raise validation_error(f"ModelPackage {arn} does not exist.")
            spec = json.loads(row["spec"])
            metadata = dict(spec.get("CustomerMetadataProperties") or {})
            metadata.update(update.get("CustomerMetadataProperties") or {})
            for key in update.get("CustomerMetadataPropertiesToRemove") or []:
                metadata.pop(key, None)
            if metadata or "CustomerMetadataProperties" in spec:
                spec["CustomerMetadataProperties"] = metadata
            for field in ("InferenceSpecification", "ModelCard", "SourceUri", "ModelLifeCycle"):
                if field in update:
                    spec[field] = update[field]
            if update.get("AdditionalInferenceSpecificationsToAdd"):
                spec["AdditionalInferenceSpecifications"] = (
                    spec.get("AdditionalInferenceSpecifications", []) + update["AdditionalInferenceSpecificationsToAdd"]
                )
            conn.execute(
                "UPDATE model_packages SET approval_status=?, approval_description=?, last_modified_time=?, "
                "spec=? WHERE arn=?",
                (approval or row["approval_status"],
                 update.get("ApprovalDescription", row["approval_description"]),
                 self._now(), json.dumps(spec), arn),
            )
        return arn

    def _package_record(self, row: sqlite3.Row) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ModelPackageName": row["group_name"],
            "ModelPackageGroupName": row["group_name"],
            "ModelPackageVersion": row["version"],
            "ModelPackageArn": row["arn"],
            "CreationTime": to_datetime(row["creation_time"]),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "ModelApprovalStatus": row["approval_status"],
            "LastModifiedTime": to_datetime(row["last_modified_time"]),
        }
        if row["description"] is not None:
            record["ModelPackageDescription"] = row["description"]
        if row["approval_description"] is not None:
            record["ApprovalDescription"] = row["approval_description"]
        spec = json.loads(row["spec"])
        spec.pop("Tags", None)
        record.update(spec)
        return record

    # -- models ---------------------------------------------------------------------------------
    def create_model(self, request: dict[str, Any]) -> str:
        name = check_name(request.get("ModelName"), "ModelName")
        if not request.get("PrimaryContainer") and not request.get("Containers"):
            raise validation_error("Either PrimaryContainer or Containers must be provided.")
        arn = self.arn("model", name.lower())
        spec = {k: v for k, v in request.items() if k not in ("ModelName", "Tags")}
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM models WHERE name=?", (name,)).fetchone():
                raise validation_error(f'Cannot create already existing model "{arn}".')
            conn.execute("INSERT INTO models VALUES (?,?,?,?)", (name, arn, self._now(), json.dumps(spec)))
        return arn

    def describe_model(self, name: str) -> dict[str, Any]:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM models WHERE name=?", (name,)).fetchone()
        if row is None:
            raise validation_error(f'Could not find model "{self.arn("model", str(name).lower())}".')
        return {"ModelName": row["name"], "ModelArn": row["arn"],
                "CreationTime": to_datetime(row["creation_time"]), **json.loads(row["spec"])}

    def delete_model(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute("DELETE FROM models WHERE name=?", (name,)).rowcount == 0:
                raise validation_error(f'Could not find model "{self.arn("model", str(name).lower())}".')

    # -- endpoint configs -----------------------------------------------------------------------
    def create_endpoint_config(self, request: dict[str, Any]) -> str:
        name = check_name(request.get("EndpointConfigName"), "EndpointConfigName")
        variants = request.get("ProductionVariants") or []
        if not variants:
            raise validation_error("ProductionVariants must contain at least one variant.")
        names = [v.get("VariantName") for v in variants]
        if len(set(names)) != len(names):
            raise validation_error(f"Variant names must be unique within an endpoint config: {names}")
        for variant in variants:
            self.describe_model(variant.get("ModelName", ""))
        arn = self.arn("endpoint-config", name.lower())
        spec = {k: v for k, v in request.items() if k not in ("EndpointConfigName", "Tags")}
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM endpoint_configs WHERE name=?", (name,)).fetchone():
                raise validation_error(f'Cannot create already existing endpoint configuration "{arn}".')
            conn.execute("INSERT INTO endpoint_configs VALUES (?,?,?,?)", (name, arn, self._now(), json.dumps(spec)))
        return arn

    def describe_endpoint_config(self, name: str) -> dict[str, Any]:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM endpoint_configs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise validation_error(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", str(name).lower())}".'
            )
        return {"EndpointConfigName": row["name"], "EndpointConfigArn": row["arn"],
                "CreationTime": to_datetime(row["creation_time"]), **json.loads(row["spec"])}

    def delete_endpoint_config(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute("DELETE FROM endpoint_configs WHERE name=?", (name,)).rowcount == 0:
                raise validation_error(
                    f'Could not find endpoint configuration "{self.arn("endpoint-config", str(name).lower())}".'
                )

    # -- endpoints ------------------------------------------------------------------------------
    def create_endpoint(self, name: str, config_name: str, spec: dict[str, Any]) -> str:
        """Record a new endpoint in status ``Creating``; returns its ARN."""
        check_name(name, "EndpointName")
        self.describe_endpoint_config(config_name)
        arn = self.arn("endpoint", name.lower())
        now = self._now()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM endpoints WHERE name=?", (name,)).fetchone():
                raise validation_error(f'Cannot create already existing endpoint "{arn}".')
            conn.execute(
                "INSERT INTO endpoints VALUES (?,?,?,?,?,?,?,?)",
                (name, arn, config_name, "Creating", None, now, now, json.dumps(spec)),
            )
        return arn

    def endpoint_row(self, name: str) -> dict[str, Any]:
        """The stored endpoint: name, arn, config_name, status, failure_reason, times, spec."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name=?", (name,)).fetchone()
        if row is None:
            raise validation_error(f'Could not find endpoint "{self.arn("endpoint", str(name).lower())}".')
        record = dict(row)
        record["spec"] = json.loads(record["spec"])
        return record

    def set_endpoint_state(self, name: str, status: str, *, failure_reason: str | None = None,
                           config_name: str | None = None, spec: dict[str, Any] | None = None) -> None:
        """Move an endpoint to ``status`` (and optionally a new config / spec); clears or sets FailureReason."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name=?", (name,)).fetchone()
            if row is None:
                raise validation_error(f'Could not find endpoint "{self.arn("endpoint", str(name).lower())}".')
            conn.execute(
                "UPDATE endpoints SET status=?, failure_reason=?, config_name=?, spec=?, last_modified_time=? "
                "WHERE name=?",
                (status, failure_reason, config_name or row["config_name"],
                 json.dumps(spec) if spec is not None else row["spec"], self._now(), name),
            )

    def list_endpoint_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM endpoints ORDER BY creation_time, name").fetchall()
        return [dict(row) | {"spec": json.loads(row["spec"])} for row in rows]

    def delete_endpoint(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute("DELETE FROM endpoints WHERE name=?", (name,)).rowcount == 0:
                raise validation_error(f'Could not find endpoint "{self.arn("endpoint", str(name).lower())}".')


_PACKAGE_COLUMNS = ("ModelPackageGroupName", "ModelApprovalStatus", "ModelPackageDescription",
                    "ApprovalDescription", "ClientToken", "ModelPackageName")


def _check_approval(status: str) -> None:
    if status not in APPROVAL_STATUSES:
        raise validation_error(
            f"1 validation error detected: Value {status!r} at 'modelApprovalStatus' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(APPROVAL_STATUSES)}]"
        )


def _check_metadata(properties: dict[str, Any] | None) -> None:
    """CustomerMetadataProperties as SageMaker constrains them: 1-50 entries, keys 1-128 and values 1-256 chars."""
    if properties is None:
        return
    if not isinstance(properties, dict) or not 1 <= len(properties) <= 50:
        raise validation_error("CustomerMetadataProperties must map 1 to 50 keys to values")
    for key, value in properties.items():
        for what, text, limit in (("key", key, 128), (f"value of {key!r}", value, 256)):
            if not isinstance(text, str) or not 1 <= len(text) <= limit or not _METADATA_RE.match(text):
                raise validation_error(
                    f"CustomerMetadataProperties {what} {text!r} must be 1-{limit} characters of letters, digits, "
                    "spaces and _.:/=+-@"
                )
