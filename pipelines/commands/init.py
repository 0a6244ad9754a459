"""`continuum init DIR --data PATH...`: start a project for your own company's data.

Writes DIR/continuum.yaml (the CLI finds it when run from DIR) with nothing of the demo in it: the
project's names, your data as the source, a benchmark suite made from a sample of YOUR facts
(DIR/benchmarks/<project>_facts: questions from the data, their answers as targets), the gate on
that suite, smoke prompts from your data. It runs the prepare step on the data first, so a file
that cannot be read or a data set too small to train fails here, with the step's report, not in
the first pipeline run. Without --base-model it builds a tiny local base model (tokenizer trained
on your data) in DIR/base-model, so the whole loop runs offline; with --base-model (an HF id, a
local folder or an s3:// URI) the schema's training defaults for real models apply.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from pipelines.cli_support import add_target, backend_for
from pipelines.config import PROJECT_CONFIG_FILE, ConfigError, load_config
from pipelines.paths import STEPS_DIR

SUITE_CASES = 64  # facts re-asked by the generated suite (a sample: evaluation time grows with it)
SMOKE_PROMPTS = 3
DEFAULT_GATE_THRESHOLD = 0.5  # token F1 on the project's own facts after training on them
# The tiny local base model (pipelines/demo/tiny_model.py) learns from scratch-sized LoRA steps: a high
# learning rate and many epochs; sequences fit its 256 positions. Real models use the schema's defaults.
TINY_MODEL_TRAINING = {"lora": {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear"},
                       "learning_rate": 0.003, "epochs": 20, "batch_size": 8, "max_seq_length": 256}


def project_name(text: str) -> str:
    """A name SageMaker accepts for pipelines, groups and endpoints (letters, digits, single hyphens)."""
    name = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]+", "-", text)).strip("-").lower()[:40].strip("-")
    if not name or not name[0].isalnum():
        raise ValueError(f"cannot make a project name from {text!r}: pass --name")
    return name


def draft_config(name: str, source: str, suite_dir: Path, base_model: str | None, smoke: list[str],
                 threshold: float) -> dict[str, Any]:
    """The project's config as a mapping (every value here is the project's, none the demo's)."""
    suite = suite_dir.name
    config: dict[str, Any] = {
        "project": {"name": name, "region": "us-east-1",
                    "role_arn": "arn:aws:iam::000000000000:role/continuum-sagemaker-execution",
                    "bucket": f"{name}-continuum-artifacts"[:63], "tags": {"project": name}},
        "model": {"base_model": base_model or "./base-model", "model_package_group": f"{name}-models"},
        "data": {"source": source, "pii": "redact", "pii_allow": []},
        "evaluation": {"suites": [f"./benchmarks/{suite}"],
                       "gate": {"metric": f"{suite}_token_f1", "higher_is_better": True, "threshold": threshold,
                                "max_regression": 0.05, "max_forgetting": 0.1}},
        "deploy": {"endpoint_name": f"{name}-staging", "smoke_prompts": smoke,
                   "production": {"enabled": True, "endpoint_name": f"{name}-prod", "traffic_routing": "CANARY"}},
    }
    if base_model is None:
        config["training"] = json.loads(json.dumps(TINY_MODEL_TRAINING))
    return config


HEADER = """\
# {name}: written by `continuum init` from {data}.
# Your data, your suite ({suite}: {cases} of your facts re-asked), your gate. Edit freely; every value is
# documented in pipelines/config.py. Local paths are relative to this file.
#   continuum run                  # training pipeline, locally (add --aws for SageMaker)
#   continuum models approve       # approve the version it registered
#   continuum deploy               # staging (smoke test + your suite, gated) then production
# On AWS: set project.role_arn and project.bucket (globally unique); model.base_model to an HF id or s3:// URI.
# deploy.production keeps the defaults SageMaker can act on (2 instances, a one-instance canary, a 600 s bake);
# for quick local rehearsals set deploy.production.bake_seconds lower (`continuum deploy --aws` refuses it then).
"""


def _stable_order(examples: list[dict[str, Any]], salt: str) -> list[dict[str, Any]]:
    return sorted(examples, key=lambda e: hashlib.sha256(f"{salt}:{e.get('id') or e['prompt']}".encode()).hexdigest())


def suite_case(example: dict[str, Any]) -> dict[str, Any]:
    """A qa case re-asking a prepared example: a chat keeps its context (system message, earlier turns)."""
    messages = example.get("messages") or []
    if len(messages) > 2 or (messages and messages[0].get("role") == "system"):
        return {"id": example["id"], "messages": messages[:-1], "target": example["completion"]}
    return {"id": example["id"], "prompt": example["prompt"], "target": example["completion"]}


def write_suite(suite_dir: Path, examples: list[dict[str, Any]], company: str) -> int:
    """DIR/benchmarks/<suite>: suite.yaml + cases.jsonl, a stable sample of the examples."""
    cases = [suite_case(example) for example in _stable_order(examples, "suite")[:SUITE_CASES]]
    suite_dir.mkdir(parents=True, exist_ok=True)
    spec = {"name": suite_dir.name, "version": "1", "task": "qa", "prompt_template": "{prompt}", "data": "cases.jsonl",
            "metrics": ["exact_match", "token_f1", "rouge_l"], "higher_is_better": True}
    (suite_dir / "suite.yaml").write_text(
        f"# {company}'s own facts, sampled from its data by `continuum init`: the model must answer them.\n"
        + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (suite_dir / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases), encoding="utf-8")
    return len(cases)


def read_prepared(out: Path) -> list[dict[str, Any]]:
    """Every example the prepare step kept (train and held-out splits), one per id."""
    seen: dict[str, dict[str, Any]] = {}
    for split in ("train", "validation", "test"):
        for path in sorted((out / split).glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    example = json.loads(line)
                    seen.setdefault(str(example.get("id") or example["prompt"]), example)
    return list(seen.values())


def _local_data(paths: list[str], target: Path, backend_client: Callable[[], Any]) -> tuple[str, list[Path]]:
    """(data.source for the config, local folders to sample); several local paths are copied into DIR/data."""
    from pipelines.s3_transfer import download_prefix

    if any(path.startswith("s3://") for path in paths):
        if len(paths) > 1:
            raise ValueError("--data: give one s3:// prefix, or local files and folders")
        scratch = Path(tempfile.mkdtemp(prefix="continuum-init-"))
        return paths[0], [download_prefix(backend_client(), paths[0], scratch / "data")]
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"--data {path}: no such file or folder")
    if len(paths) == 1:
        return str(Path(paths[0]).resolve()), [Path(paths[0]).resolve()]
    data_dir = target / "data"
    for path in map(Path, paths):
        destination = data_dir / path.name
        if path.is_dir():
            shutil.copytree(path, destination, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    return "./data", [data_dir]


def prepare_sample(config_file: Path, inputs: list[Path], out: Path) -> list[dict[str, Any]]:
    """The prepare step on the data with the project's settings; its examples (raises with the step's output)."""
    from pipelines.training.prepare_arguments import step_command

    command = step_command(inputs, out, load_config(config_file), None, None, 0)
    result = subprocess.run(command, cwd=STEPS_DIR, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"the data cannot be used yet (prepare step, report in {out / 'report'}):\n"
                         + (result.stderr.strip() or result.stdout.strip()))
    return read_prepared(out)


def pii_note(report_file: Path) -> str | None:
    """What the prepare step redacted as PII, with where to allow values that are public."""
    pii = json.loads(report_file.read_text(encoding="utf-8")).get("pii", {}) if report_file.is_file() else {}
    found = ", ".join(f"{count} {kind}" for kind, count in sorted(pii.get("found", {}).items()))
    if not found:
        return None
    return (f"PII {pii.get('mode', 'redact')}ed in {pii.get('rows', '?')} row(s) ({found}); if a value is public "
            "(a support address or phone), list it in data.pii_allow")


def init_project(target: Path, data: list[str], name: str | None, base_model: str | None, threshold: float,
                 backend_client: Callable[[], Any], force: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Write DIR/continuum.yaml, DIR/benchmarks/<suite>/ and (no base model given) DIR/base-model/."""
    target = target.resolve()
    config_file = target / PROJECT_CONFIG_FILE
    if config_file.exists() and not force:
        raise FileExistsError(f"{config_file} exists; pass --force to write it again")
    project = project_name(name or target.name)
    target.mkdir(parents=True, exist_ok=True)
    source, inputs = _local_data(data, target, backend_client)
    suite_dir = target / "benchmarks" / f"{project.replace('-', '_')}_facts"
    draft = draft_config(project, source, suite_dir, base_model, ["(set from your data below)"], threshold)
    config_file.write_text(yaml.safe_dump(draft, sort_keys=False), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="continuum-init-") as tmp:
        try:
            examples = prepare_sample(config_file, inputs, Path(tmp) / "prepared")
        except ValueError:
            config_file.unlink()
            raise
        echo(f"{len(examples)} examples in {', '.join(map(str, data))}")
        note = pii_note(Path(tmp) / "prepared" / "report" / "report.json")
        if note:
            echo(note)
    cases = write_suite(suite_dir, examples, project)
    smoke = [example["prompt"] for example in _stable_order(examples, "smoke")[:SMOKE_PROMPTS]]
    draft = draft_config(project, source, suite_dir, base_model, smoke, threshold)
    config_file.write_text(HEADER.format(name=project, data=", ".join(data), suite=suite_dir.name, cases=cases)
                           + yaml.safe_dump(draft, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    load_config(config_file)  # what was written validates
    if base_model is None:
        from pipelines.demo.tiny_model import ensure_tiny_model

        texts = [f"{example['prompt']} {example['completion']}" for example in examples]
        ensure_tiny_model(target / "base-model", texts)
        echo(f"tiny base model (tokenizer trained on your data): {target / 'base-model'}")
    echo(f"suite {suite_dir.name}: {cases} cases in {suite_dir}")
    echo(f"wrote {config_file}\nnext: cd {target} && continuum run")
    return config_file


def cmd_init(args: argparse.Namespace) -> int:
    def s3_client() -> Any:
        return backend_for(args, load_config()).client("s3")

    try:
        init_project(Path(args.dir), args.data, args.name, args.base_model, args.gate_threshold, s3_client, args.force)
    except (ValueError, OSError, ConfigError) as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 1
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("init", cmd_init, "start a project for your data: config, a suite of your facts, a gate")
    parser.add_argument("dir", help="project folder (created; continuum.yaml goes there)")
    parser.add_argument("--data", nargs="+", required=True, metavar="PATH",
                        help="your data: files or folders (JSONL, JSON, CSV/TSV, Parquet, text) or one s3:// prefix")
    parser.add_argument("--name", help="project name (default: the folder's name)")
    parser.add_argument("--base-model", help="HF model id, local folder or s3:// URI (default: a tiny local model)")
    parser.add_argument("--gate-threshold", type=float, default=DEFAULT_GATE_THRESHOLD,
                        help=f"token F1 the model must reach on your suite (default {DEFAULT_GATE_THRESHOLD})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing continuum.yaml")
    add_target(parser)
