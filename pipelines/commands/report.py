"""`continuum report [VERSION]`: where a model version's evaluation report (report.html) is.

The report is attached to the version in the Model Registry (customer metadata
`evaluation_report_uri`; a version registered before that gets report.html next to its
ModelMetrics evaluation.json). Locally it prints the file's path; with --aws the S3 URI and a
presigned HTTPS link. Then the size and coverage of the version's knowledge inventory (its
`inventory_uri`). --open opens the report in a browser.
"""
from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config
from pipelines.inventory_summary import INVENTORY_KEY, describe_inventory, read_inventory_summary

REPORT_KEY = "evaluation_report_uri"
REPORT_FILE = "report.html"


def report_uri(metadata: dict[str, str], metrics_uri: str | None) -> str | None:
    """The version's report: its recorded URI, else report.html beside its evaluation.json."""
    if metadata.get(REPORT_KEY):
        return metadata[REPORT_KEY]
    if metrics_uri:
        return metrics_uri.rsplit("/", 1)[0] + "/" + REPORT_FILE
    return None


def _version_number(text: str) -> int | None:
    if text == "latest":
        return None
    try:
        return int(text.removeprefix("v"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a version number or 'latest', got {text!r}") from exc


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines.registry_ops import find_version

    config = load_config(args.config)
    backend = backend_for(args, config)
    try:
        version = find_version(backend.client("sagemaker"), config.model.model_package_group, args.version)
    except LookupError as exc:
        print(f"report: {exc}")
        return 1
    uri = report_uri(version.metadata, version.metrics_uri)
    if uri is None:
        print(f"report: version {version.version} has no evaluation attached")
        return 1
    try:
        location = backend.object_location(uri, args.expires_in, content_type="text/html")
    except FileNotFoundError as exc:
        print(f"report: version {version.version}: {exc}")
        return 1
    presigned = "://" in location  # a link: the S3 URI goes above it; a local file is its own address
    if presigned:
        print(uri)
    print(location)
    link = location if presigned else Path(location).as_uri()
    inventory_uri = version.metadata.get(INVENTORY_KEY)
    print("\n".join(describe_inventory(read_inventory_summary(backend.client("s3"), inventory_uri), inventory_uri, "")))
    if version.metadata.get("cost_usd"):  # written after the run (pipelines/run_records.py)
        print(f"cost: ${version.metadata['cost_usd']} ({version.metadata.get('cost_basis', '')})"
              + (f"; MLflow run {version.metadata['mlflow_run_id']}" if version.metadata.get("mlflow_run_id") else ""))
    if args.open:
        webbrowser.open(link)
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("report", cmd_report, "print (or --open) the evaluation report of a model version")
    parser.add_argument("version", nargs="?", type=_version_number, default=None, help="version number (default: latest)")
    parser.add_argument("--open", action="store_true", help="open the report in a browser")
    parser.add_argument("--expires-in", type=int, default=3600, help="with --aws: seconds the presigned link works")
    add_target(parser)
