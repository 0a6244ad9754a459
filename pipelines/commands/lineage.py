"""`continuum lineage [VERSION] [--data-version HASH]`: which data trained a model version, and back.

From the Model Registry (AWS's or the local stand-in): a version's CustomerMetadataProperties
(data_version, training_data_uri, train_data_uri, parent_model_package_arn, inventory_uri), the
data manifest stored with its train split (`<train_data_uri>/manifest.json`: input files and
hashes, output hashes and counts, settings, replay, previous data version) and the size and
coverage of its knowledge inventory (`<inventory_uri>/summary.json`), then the same for its
parent, back to the base model. `--data-version` lists the versions trained on a data version (a prefix works).
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config
from pipelines.inventory_summary import INVENTORY_KEY, describe_inventory, read_inventory_summary

MANIFEST_FILE = "manifest.json"  # written by steps/prepare.py next to the train split


def read_manifest(s3: Any, train_data_uri: str | None) -> dict[str, Any] | None:
    """The data manifest stored with a train split, or None when there is none."""
    from botocore.exceptions import ClientError

    if not train_data_uri or not train_data_uri.startswith("s3://"):
        return None
    bucket, _, prefix = train_data_uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{MANIFEST_FILE}")["Body"].read()
    except ClientError:
        return None
    return json.loads(body)


def version_lineage(sagemaker: Any, s3: Any, group: str, version: int | None, limit: int = 1000,
                    start: Any = None) -> list[dict[str, Any]]:
    """The chain version → parent → ... (newest first, at most ``limit`` versions), each with its data lineage;
    ``start``: the version's ModelVersion when the caller has it already."""
    from pipelines.registry_ops import describe_version, find_version

    chain: list[dict[str, Any]] = []
    current = start or find_version(sagemaker, group, version)
    while True:
        metadata = current.metadata
        chain.append({
            "version": current.version, "status": current.approval_status, "arn": current.arn,
            "model_data_url": current.model_data_url, "data_version": metadata.get("data_version"),
            "training_data_uri": metadata.get("training_data_uri"), "train_data_uri": metadata.get("train_data_uri"),
            "start_model_uri": metadata.get("start_model_uri"), "inventory_uri": metadata.get(INVENTORY_KEY),
            "manifest": read_manifest(s3, metadata.get("train_data_uri")),
            "inventory": read_inventory_summary(s3, metadata.get(INVENTORY_KEY)),
        })
        parent = metadata.get("parent_model_package_arn")
        if not parent or parent == "none" or len(chain) >= limit:
            return chain
        current = describe_version(sagemaker, parent)


def versions_trained_on(sagemaker: Any, group: str, data_version: str) -> list[dict[str, Any]]:
    from pipelines.registry_ops import list_versions

    return [{"version": item.version, "status": item.approval_status, "arn": item.arn,
             "data_version": item.metadata.get("data_version")}
            for item in list_versions(sagemaker, group)
            if item.metadata.get("data_version", "").startswith(data_version)]


def _describe(entry: dict[str, Any]) -> list[str]:
    lines = [f"v{entry['version']} {entry['status']}: data version {entry['data_version']}",
             f"  trained on {entry['training_data_uri']} (prepared: {entry['train_data_uri']})",
             f"  started from {entry['start_model_uri']}",
             *describe_inventory(entry["inventory"], entry["inventory_uri"])]
    manifest = entry["manifest"]
    if manifest is None:
        lines.append("  no data manifest stored with the train split")
        return lines
    rows, replay = manifest["rows"], manifest["replay"]
    lines.append(f"  rows: input {rows['input']}, kept {rows['kept']}, duplicates {rows['duplicates']}, "
                 f"quarantined {rows['quarantined']}; replayed {replay['used']} "
                 f"(previous data version {manifest.get('previous_data_version') or 'none'})")
    lines += [f"  input {item['path']} sha256 {item['sha256'][:16]} rows {item['rows']}" for item in manifest["inputs"]]
    lines += [f"  output {name}: {item['examples']} examples sha256 {item['sha256'][:16]}"
              for name, item in manifest["outputs"].items()]
    return lines


def cmd_lineage(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backend = backend_for(args, config)
    sagemaker, group = backend.client("sagemaker"), config.model.model_package_group
    if args.data_version:
        found = versions_trained_on(sagemaker, group, args.data_version)
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            print(f"{len(found)} version(s) of {group} trained on data version {args.data_version}")
            for item in found:
                print(f"  v{item['version']} {item['status']} data {item['data_version']} {item['arn']}")
        return 0 if found else 1
    chain = version_lineage(sagemaker, backend.client("s3"), group, args.version)
    if args.json:
        print(json.dumps(chain, indent=2, default=str))
        return 0
    for entry in chain:
        print("\n".join(_describe(entry)))
    print(f"base: {chain[-1]['start_model_uri']}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("lineage", cmd_lineage, "the data (and parent versions) behind a model version")
    parser.add_argument("version", nargs="?", type=int, help="model version (default: the newest)")
    parser.add_argument("--data-version", help="list the versions trained on this data version (a prefix works)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_target(parser)
