"""containers/images.yaml: every step's image, recorded; the definitions use it; bad records are named.

The step requirements against the step images: tests/test_step_requirements.py; the serving image against
trained artifacts: tests/test_serving_compat.py."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines import images
from pipelines.images import ImageRecordError, load_catalog, read_catalog, requirement_lines, unresolvable

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP_REQUIREMENTS = REPO_ROOT / "steps" / "requirements.txt"
SERVING_REQUIREMENTS = REPO_ROOT / "containers" / "serving" / "requirements.txt"


def test_every_role_has_a_complete_record_for_each_accelerator() -> None:
    catalog = load_catalog()
    for role in images.ROLES:
        for accelerator in ("cpu", "gpu"):
            image = catalog.for_step(role, accelerator)
            assert image.accelerator == accelerator and image.python and image.source
            assert image.version("torch"), f"{image.key} records no torch"
            uri = catalog.uri(image, "eu-central-1")
            assert uri == f"763104351884.dkr.ecr.eu-central-1.amazonaws.com/{image.repository}:{image.tag}"
    # the packages files are the images' own lock files: the step images' torch is the one the tests run here
    for role in ("processing", "training"):
        for accelerator in ("cpu", "gpu"):
            assert catalog.for_step(role, accelerator).version("torch").split("+")[0] == "2.13.0"
    assert catalog.for_step("serving", "gpu").version("transformers").startswith("5.")


def test_instance_types_pick_the_image_by_accelerator() -> None:
    from sagemaker.workflow.parameters import ParameterString

    assert images.accelerator_of("ml.g5.2xlarge") == "gpu" and images.accelerator_of("ml.p4d.24xlarge") == "gpu"
    assert images.accelerator_of("ml.m5.xlarge") == "cpu" and images.accelerator_of("ml.c7i.large") == "cpu"
    assert images.accelerator_of(ParameterString("ProcessingInstanceType", default_value="ml.g6.xlarge")) == "gpu"
    assert images.image_uri("123.dkr.ecr.us-east-1.amazonaws.com/mine:1", "training", "ml.g5.xlarge", "us-east-1") \
        == "123.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    with pytest.raises(ValueError, match="instance type must be a string"):
        images.accelerator_of(ParameterString("NoDefault"))


@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
def test_the_serving_image_has_what_the_handler_needs(accelerator: str) -> None:
    catalog = load_catalog()
    image = catalog.for_step("serving", accelerator)
    lines = requirement_lines(SERVING_REQUIREMENTS)
    assert unresolvable(lines, image, catalog.protected, str(SERVING_REQUIREMENTS)) == []
    # nothing to install there: every line is met by the image's own packages
    from packaging.requirements import Requirement

    assert all(image.version(Requirement(line).name) for line in lines)


def test_the_old_images_are_refused_with_the_reason() -> None:
    """The former defaults: PyTorch 2.3 for processing (torch replaced by pip), HF inference 4.51.3 for serving."""
    catalog = load_catalog()
    processing = catalog.for_step("processing", "gpu")
    pytorch_23 = replace(processing, key="pytorch-training-2.3", packages={"torch": "2.3.0"}, python="3.11")
    problems = unresolvable(requirement_lines(STEP_REQUIREMENTS), pytorch_23, catalog.protected, "steps/requirements.txt")
    assert any("accelerate" in p and "needs torch>=2.6" in p and "pip would replace the image's torch" in p
               for p in problems), problems
    # HF inference 4.51.3 does not meet the handler's transformers line: the toolkit would have to install a
    # transformers 5 at every endpoint start (tests/test_serving_compat.py shows what 4.51.3 does instead)
    from packaging.requirements import Requirement

    transformers = [Requirement(line) for line in requirement_lines(SERVING_REQUIREMENTS)
                    if Requirement(line).name == "transformers"]
    assert len(transformers) == 1 and not transformers[0].specifier.contains("4.51.3")
    assert transformers[0].specifier.contains(load_catalog().for_step("serving", "gpu").version("transformers"))


def test_requires_python_is_checked_against_the_images_python() -> None:
    catalog = load_catalog()
    old_python = replace(catalog.for_step("processing", "cpu"), key="py38-image", python="3.8")
    problems = unresolvable(["transformers>=5"], old_python, catalog.protected, "x")
    assert any("requires Python" in p and "py38-image has 3.8" in p for p in problems), problems


def _record(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_IMAGE = ("    repository: r\n    tag: t\n    accelerator: {acc}\n    python: '3.12'\n"
              "    packages: {{torch: '2.13.0'}}\n    source: s\n")


def test_malformed_records_are_named(tmp_path: Path) -> None:
    head = "account: '1'\nuri: '{account}/{repository}:{tag}'\nprotected: [torch]\nimages:\n"
    steps = "steps:\n" + "".join(f"  {role}: {{cpu: c, gpu: g}}\n" for role in images.ROLES)
    good = head + "  c:\n" + GOOD_IMAGE.format(acc="cpu") + "  g:\n" + GOOD_IMAGE.format(acc="gpu") + steps
    assert read_catalog(_record(tmp_path, good)).for_step("training", "gpu").key == "g"
    with pytest.raises(ImageRecordError, match=r"images.yaml: steps.serving.gpu: no image 'x' under images"):
        read_catalog(_record(tmp_path, good.replace("serving: {cpu: c, gpu: g}", "serving: {cpu: c, gpu: x}")))
    with pytest.raises(ImageRecordError, match=r"steps.training.cpu: g is a gpu image"):
        read_catalog(_record(tmp_path, good.replace("training: {cpu: c, gpu: g}", "training: {cpu: g, gpu: g}")))
    with pytest.raises(ImageRecordError, match=r"images.c: missing field 'repository'"):
        read_catalog(_record(tmp_path, good.replace("    repository: r\n", "", 1)))
    with pytest.raises(ImageRecordError, match=r"images.c: the record names no torch version"):
        read_catalog(_record(tmp_path, good.replace("{torch: '2.13.0'}", "{numpy: '2.0'}", 1)))
    (tmp_path / "pk.txt").write_text("torch==2.13.0\nnot a pin\n", encoding="utf-8")
    with pytest.raises(ImageRecordError, match=r"pk.txt:2: expected name==version"):
        read_catalog(_record(tmp_path, good.replace("    packages: {torch: '2.13.0'}\n", "    packages_file: pk.txt\n", 1)))


def _instance_type(value: object, definition: dict) -> str:
    """A literal instance type, or the default of the parameter it refers to."""
    if isinstance(value, dict):
        name = value["Get"].removeprefix("Parameters.")
        return next(p["DefaultValue"] for p in definition["Parameters"] if p["Name"] == name)
    assert isinstance(value, str)
    return value


def _all_steps(steps: list[dict]) -> list[dict]:
    found = []
    for step in steps:
        found.append(step)
        if step["Type"] == "Condition":
            found += _all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])
    return found


def test_the_definitions_use_the_recorded_images() -> None:
    """Every job and the registered model package name the image the record gives their instance type."""
    import boto3
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.config import load_config
    from pipelines.definitions import definition_json

    config = load_config()
    catalog = load_catalog()
    seen: dict[str, set[str]] = {"processing": set(), "training": set(), "serving": set()}
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=config.project.bucket)
        for kind in ("training", "deploy"):
            definition = definition_json(kind, config, Backend("aws", session))
            for step in _all_steps(definition["Steps"]):
                arguments = step["Arguments"]
                if step["Type"] == "Processing":
                    role, uri = "processing", arguments["AppSpecification"]["ImageUri"]
                    instance = _instance_type(arguments["ProcessingResources"]["ClusterConfig"]["InstanceType"], definition)
                elif step["Type"] == "Training":
                    role, uri = "training", arguments["AlgorithmSpecification"]["TrainingImage"]
                    instance = _instance_type(arguments["ResourceConfig"]["InstanceType"], definition)
                elif step["Type"] == "RegisterModel":
                    role, uri = "serving", arguments["InferenceSpecification"]["Containers"][0]["Image"]
                    instance = arguments["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"][0]
                else:
                    continue
                expected = catalog.uri(catalog.for_step(role, images.accelerator_of(instance)), "us-east-1")
                assert uri == expected, f"{kind} pipeline, step {step['Name']} on {instance}: {uri} != {expected}"
                seen[role].add(step["Name"])
    assert {"PrepareData", "EvaluateModel", "DeployEndpoint"} <= seen["processing"], seen
    assert seen["training"] == {"TrainModel"} and len(seen["serving"]) == 1, seen
