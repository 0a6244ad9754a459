"""Page render time of `continuum ui`, per screen, on a local home with 50 registered versions and 100 executions.

The home is synthesized (no training): 50 model versions in the local registry, each with an evaluation.json
(every suite and metric of the demo's config), lineage metadata and an inventory summary; 100 pipeline
executions (real definition JSON of both pipelines, execution records with every step); a prepare report per
version; 600 captured exchanges; 30 monitor reports. The dashboard is served by uvicorn on 127.0.0.1 and each
screen is fetched over HTTP: the first (cold) fetch, then the median and the worst of 10 more. Target: ≤ 300 ms.

    .venv/bin/python bench/ui_render.py [--versions 50] [--executions 100] [--repeat 10]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines import s3_layout  # noqa: E402
from pipelines.backend import Backend, local_backend  # noqa: E402
from pipelines.config import Config, load_config  # noqa: E402

SCREENS = ["/", "/data", "/runs", "/models", "/models/{newest}", "/benchmarks", "/deploy", "/monitoring", "/feedback",
           "/runs/{pipeline}/{execution}"]
TARGET_MS = 300.0
SUITE_METRICS = {"company_facts": ["exact_match", "token_f1", "rouge_l"], "company_quiz": ["accuracy", "accuracy_norm"]}


def _put(s3: object, uri: str, value: object) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = value if isinstance(value, (bytes, str)) else json.dumps(value)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)  # type: ignore[attr-defined]


def _evaluation(rng: random.Random, gate_metric: str) -> dict:
    metrics = {}
    for suite, names in SUITE_METRICS.items():
        for name in names:
            value = rng.uniform(0.6, 1.0)
            metrics[f"{suite}_{name}"] = {"value": value, "baseline": value - 0.01, "delta": 0.01, "regression": 0.0,
                                          "higher_is_better": True, "suite": suite, "metric": name}
    metrics.setdefault(gate_metric, metrics["company_facts_token_f1"])
    return {"metrics": metrics, "suites": {}, "gate": {"passed": True, "summary": "all checks passed", "checks": {}}}


def synthesize(home: Path, config: Config, versions: int, executions: int, seed: int = 0) -> Backend:
    from pipelines.definitions import definition_json
    from pipelines.staging import ensure_bucket

    rng = random.Random(seed)
    backend = local_backend(config, home)
    ensure_bucket(backend, config.project.bucket)
    s3, sagemaker = backend.client("s3"), backend.client("sagemaker")
    group = config.model.model_package_group
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    parent = "none"
    prefix = config.s3_prefix
    for number in range(1, versions + 1):
        evaluation_uri = f"{prefix}/bench/v{number}/evaluation.json"
        _put(s3, evaluation_uri, _evaluation(rng, config.evaluation.gate.metric))
        inventory_uri = f"{prefix}/bench/v{number}/inventory"
        _put(s3, f"{inventory_uri}/summary.json", {"items": 100 + number, "checked": 100, "known": 90, "data_versions": 1,
                                                   "by_data_version": {f"data{number:04d}": {"items": 100, "checked": 100,
                                                                                             "known": 90}}})
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus=rng.choice(["Approved", "Rejected", "PendingManualApproval"]),
            InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": f"{prefix}/bench/v{number}/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}},
            CustomerMetadataProperties={"data_version": f"data{number:04d}" + "0" * 56, "parent_model_package_arn": parent,
                                        "inventory_uri": inventory_uri, "training_data_uri": f"{prefix}/data/{number}"})["ModelPackageArn"]
        parent = arn
        report_uri = f"s3://{config.project.bucket}/{config.training_pipeline_name}/bench{number:04d}/PrepareData/output/report/report.json"
        _put(s3, report_uri, {"data_version": f"data{number:04d}", "rows": {"input": 200, "kept": 190, "duplicates": 5,
                              "quarantined": 5}, "quarantine_reasons": {"empty_field": 5}, "splits": {"train": 170,
                              "validation": 20, "test": 0}, "replay": {"used": 100}, "comparison": {"reason": "20 new"},
                              "files": [{"path": "faq.csv", "format": "csv", "rows": 200, "quarantined": 5}],
                              "sample": [{"prompt": f"question {i}?", "completion": "answer", "source": f"faq.csv:{i}"}
                                         for i in range(25)], "contradictions": None})
    definitions = {kind: definition_json(kind, config, backend) for kind in ("training", "deploy")}
    for index in range(executions):
        kind = "training" if index % 2 == 0 else "deploy"
        name = config.training_pipeline_name if kind == "training" else config.deploy_pipeline_name
        folder = home / "executions" / name / f"bench{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "definition.json").write_text(json.dumps(definitions[kind]))
        steps = []
        for step in definitions[kind]["Steps"]:
            log = folder / step["Name"] / "job.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text("\n".join(f"line {i} of {step['Name']}" for i in range(200)))
            steps.append({"name": step["Name"], "type": step["Type"], "status": "Succeeded",
                          "started": f"2026-12-05T10:{index % 60:02d}:00+00:00", "ended": None, "seconds": 1.5,
                          "failure_reason": None, "metadata": {"log": str(log)}})
        (folder / "execution.json").write_text(json.dumps({"pipeline_name": name, "execution_id": folder.name,
                                                           "status": "Succeeded", "directory": str(folder),
                                                           "parameters": {}, "steps": steps, "failure_reason": None}))
    capture = f"{s3_layout.data_capture_uri(config)}/{config.deploy.endpoint_name}/AllTraffic/2026/12/05/10"
    for part in range(20):
        lines = [json.dumps({"captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
                              "data": json.dumps({"inputs": f"question {part}-{i}?"})},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                               "data": json.dumps([{"generated_text": "an answer"}])}},
            "eventMetadata": {"eventId": f"e{part}-{i}", "inferenceTime": "2026-12-05T10:00:00Z"}, "eventVersion": "0"})
            for i in range(30)]
        _put(s3, f"{capture}/part{part:03d}.jsonl", "\n".join(lines))
    for number in range(30):
        _put(s3, f"{s3_layout.monitoring_reports_uri(config, config.deploy.endpoint_name)}/bench{number:03d}/report.json",
             {"verdict": "ok", "generated_at": f"2026-12-{number % 28 + 1:02d}T10:00:00+00:00", "rows": 100,
              "violations": [], "checks": [{"name": name, "kind": "input_drift", "value": rng.random() / 4,
                                            "threshold": 0.3, "violated": False, "evaluated": True,
                                            "description": name} for name in ("oov_rate", "prompt_length", "topics")]})
    return backend


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        assert response.status == 200, url
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)

    import uvicorn

    from pipelines.sdk import prepare_sdk_environment
    from pipelines.ui.app import create_app
    from pipelines.ui.reads import caching
    from pipelines.ui.roles import local_identity
    from pipelines.ui.state import UiState

    prepare_sdk_environment()
    config = load_config()
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        started = time.perf_counter()
        backend = synthesize(Path(tmp), config, args.versions, args.executions)
        print(f"synthesized {args.versions} versions, {args.executions} executions in {time.perf_counter() - started:.1f}s")
        state = UiState(config, caching(backend), local_identity(config), Path(tmp))
        server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        values = {"newest": args.versions, "pipeline": config.training_pipeline_name, "execution": "bench00000"}
        print(f"{'screen':<44} {'cold ms':>8} {'median ms':>10} {'worst ms':>9}")
        worst_median = 0.0
        for screen in SCREENS:
            path = screen.format(**values)
            cold = _get(base + path)
            warm = [_get(base + path) for _ in range(args.repeat)]
            median = statistics.median(warm)
            worst_median = max(worst_median, median)
            print(f"{path:<44} {cold:>8.1f} {median:>10.1f} {max(warm):>9.1f}")
        server.should_exit = True
        verdict = "meets" if worst_median <= TARGET_MS else "misses"
        print(f"slowest median {worst_median:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
