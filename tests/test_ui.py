"""`continuum ui` in a real browser (Playwright driving Debian's Chromium, headless) on the demo's local home.

The home is this module's copy of the session's two-round demo home (tests/demo_homes.py: v1, v2 approved and
serving), plus a monitor run and a third registration of v2's artifact waiting for approval. Each screen is
opened and photographed into test-artifacts/ui/ ($CONTINUUM_TEST_ARTIFACTS); then a version is approved, a
captured answer is corrected and found in the next prepared data and the feedback suite, two versions are compared
(the feedback suite among the others), and a rollback switches both stages. A Viewer's approve is refused.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from pipelines import s3_layout
from pipelines.backend import local_backend
from pipelines.config import load_config
from pipelines.registry_ops import find_version

if TYPE_CHECKING:
    from demo_homes import DemoSnapshot

CONFIG = load_config()
GROUP = CONFIG.model.model_package_group
ARTIFACTS = Path(os.environ.get("CONTINUUM_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")) / "ui"
SCREENS = {"home": "/", "data": "/data", "runs": "/runs", "models": "/models", "model": "/models/2",
           "benchmarks": "/benchmarks", "deploy": "/deploy", "monitoring": "/monitoring", "feedback": "/feedback"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (README: apt-get install chromium)")


@pytest.fixture(scope="module")
def home(demo_rounds: dict[int, DemoSnapshot], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from pipelines.cli import main as cli_main

    root = demo_rounds[2].copy_to(tmp_path_factory.mktemp("ui-home"))
    assert cli_main(["--home", str(root), "monitor", "run", "--endpoint", CONFIG.deploy.endpoint_name]) == 0
    sagemaker = local_backend(CONFIG, root).client("sagemaker")
    v2 = find_version(sagemaker, GROUP, 2)
    sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": v2.model_data_url}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties=v2.metadata)
    yield root
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for endpoint in page["Endpoints"]:
            sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])


def _serve(state: Any) -> tuple[str, Any]:
    import uvicorn

    from pipelines.ui.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def _state(home: Path, user: str | None = None, role: str = "viewer") -> Any:
    from pipelines.ui.reads import caching
    from pipelines.ui.roles import local_identity
    from pipelines.ui.state import UiState

    config = CONFIG.model_copy(update={"ui": CONFIG.ui.model_copy(update={"users": {"vic": role}})})
    return UiState(config, caching(local_backend(config, home)), local_identity(config, user), home)


@pytest.fixture(scope="module")
def dashboards(home: Path) -> Iterator[dict[str, str]]:
    """The admin's dashboard (ui.role) and a Viewer's, on the same home."""
    admin_url, admin = _serve(_state(home))
    viewer_url, viewer = _serve(_state(home, "vic"))
    yield {"admin": admin_url, "viewer": viewer_url}
    admin.should_exit = viewer.should_exit = True


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _serving(page: Any, stage: str) -> str:
    return page.locator(f'#stages tr[data-stage="{stage}"] td.serving').inner_text()


def test_every_screen_opens_and_is_photographed(page: Any, dashboards: dict[str, str]) -> None:
    from pipelines.demo.run_demo import demo_prompts

    expected = {"home": ["Waiting for approval", "version 3"], "data": ["Quarantine", "malformed_json"],
                "runs": ["continuum-demo-training", "continuum-demo-deploy", "continuum-demo-monitor"],
                "models": ["v3", "PendingManualApproval", CONFIG.evaluation.gate.metric],
                "model": ["Knowledge inventory", "Lineage", "company_facts_token_f1"],
                "benchmarks": ["company_facts", "company_quiz"], "deploy": ["Roll back", "Deploy v2"],
                "monitoring": ["latest verdict", "Verdicts over time"],
                "feedback": [demo_prompts(2)[0]["question"]]}
    for name, path in SCREENS.items():
        response = page.goto(dashboards["admin"] + path)
        assert response.status == 200, name
        text = page.inner_text("main")
        assert "Traceback" not in text and not page.locator(".problem").count(), (name, text[:2000])
        for needle in expected[name]:
            assert needle in text, (name, needle)
        assert _shot(page, name).stat().st_size > 10_000
    page.goto(dashboards["admin"] + "/")
    assert _serving(page, "staging") == _serving(page, "production") == "v2"
    page.click(f'#runs tr:has-text("{CONFIG.training_pipeline_name}") a >> nth=0')
    assert page.locator("svg.graph g[data-step]").count() >= 5 and page.locator("#steps").is_visible()
    _shot(page, "run")
    page.goto(dashboards["admin"] + "/runs")
    page.fill("#start-run textarea[name=parameters]", "Epochs=ten")
    page.click("#start-run button")
    assert "Epochs is a Float parameter" in page.inner_text("#error")
    page.goto(dashboards["admin"] + "/models/99")
    assert "has no version 99" in page.inner_text("#error") and "Traceback" not in page.content()


def test_start_a_run_from_the_page_and_follow_it(page: Any, dashboards: dict[str, str]) -> None:
    """A training run whose RetrainMinChange no data change reaches: it stages, prepares and ends before training."""
    page.goto(dashboards["admin"] + "/runs")
    page.fill("#start-run textarea[name=parameters]", "RetrainMinChange=2")
    page.click("#start-run button")
    page.wait_for_url(f"**/runs/{CONFIG.training_pipeline_name}/*?msg=*", timeout=300_000)
    assert "training pipeline run: Succeeded" in page.inner_text("#message")
    steps = dict(row.split("\t")[0:3:2] for row in page.locator("#steps tr").all_inner_texts()[1:])
    assert (steps["PrepareData"], steps["CheckDataChanged"], steps["TrainModel"]) == (
        "Succeeded", "Succeeded", "NotExecuted")
    assert page.locator("svg.graph g[data-step]").count() == len(steps)
    _shot(page, "run-started")


def test_a_viewer_sees_everything_and_may_not_approve(page: Any, dashboards: dict[str, str], home: Path) -> None:
    page.goto(dashboards["viewer"] + "/models/3")
    assert "Viewer" in page.inner_text("#who")
    assert page.locator("#approval-form button").is_disabled()
    response = page.request.post(dashboards["viewer"] + "/models/3/approval", form={"decision": "approve",
                                                                                  "comment": "let me"})
    assert response.status == 403 and "may not approve" in response.text()
    assert find_version(local_backend(CONFIG, home).client("sagemaker"), GROUP, 3).approval_status == "PendingManualApproval"
    _shot(page, "viewer")


def test_approve_a_version_with_a_comment(page: Any, dashboards: dict[str, str], home: Path) -> None:
    page.goto(dashboards["admin"] + "/models/3")
    page.fill("#approval-form input[name=comment]", "same weights as v2, checked by hand")
    page.click("#approval-form button")
    page.wait_for_selector("#message")
    assert "version 3: Approved" in page.inner_text("#message")
    assert "Approved" in page.inner_text("#approval-status")
    package = local_backend(CONFIG, home).client("sagemaker").describe_model_package(
        ModelPackageName=find_version(local_backend(CONFIG, home).client("sagemaker"), GROUP, 3).arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert "same weights as v2, checked by hand" in package["ApprovalDescription"]
    page.goto(dashboards["admin"] + "/")
    assert "version 3 Approved by local user" in page.inner_text("#notifications")


def test_a_corrected_answer_reaches_the_next_data_and_the_feedback_suite(page: Any, dashboards: dict[str, str],
                                                                          home: Path, tmp_path: Path) -> None:
    import prepare

    from pipelines.demo.run_demo import demo_config, tiny_base_model_builder
    from pipelines.feedback import DATA_FILE, FEEDBACK_SUITE
    from pipelines.staging import download_prefix, stage_training_inputs

    question = CONFIG.deploy.smoke_prompts[0]
    page.goto(dashboards["admin"] + "/feedback")
    page.fill("#search input[name=q]", "warranty on the acme r2")
    page.click("#search button")
    page.wait_for_url("**/feedback?q=*")
    assert all(question in text for text in page.locator("#exchanges td.prompt").all_inner_texts())
    row = page.locator("#exchanges tr", has=page.locator("td.prompt", has_text=question)).first
    row.locator("input[name=right_answer]").fill("Three years, parts and labour")
    row.locator("input[name=comment]").fill("policy changed in 2026")
    row.locator("button").click()
    page.wait_for_selector("#message")
    assert "the next training run trains on it" in page.inner_text("#message")
    assert "Three years, parts and labour" in page.inner_text("#given")
    _shot(page, "feedback-given")

    backend = local_backend(CONFIG, home)
    staged = stage_training_inputs(backend, demo_config(2), tiny_base_model_builder(home))
    data = download_prefix(backend.client("s3"), staged.input_data_uri + "/", tmp_path / "data")
    provenance = json.loads((data / DATA_FILE).read_text().splitlines()[0])
    assert (provenance["prompt"], provenance["marked_by"]) == (question, "local user")
    prepare.prepare(data, tmp_path / "prepared", validation_fraction=0.1, seed=42)
    prepared = [json.loads(line) for path in (tmp_path / "prepared").glob("*/*.jsonl") for line in path.read_text().splitlines()]
    assert [(e["completion"], e["source"]) for e in prepared if e.get("prompt") == question and
            e.get("source", "").startswith("feedback/")] == [("Three years, parts and labour", f"{DATA_FILE}:1")]
    cases = download_prefix(backend.client("s3"), f"{s3_layout.benchmarks_uri(CONFIG)}/{FEEDBACK_SUITE}/",
                            tmp_path / "suite")
    assert [json.loads(line)["target"] for line in (cases / "cases.jsonl").read_text().splitlines()] == [
        "Three years, parts and labour"]
    page.goto(dashboards["admin"] + "/benchmarks")
    assert page.locator('[data-suite="feedback"]').count() == 1


def test_compare_two_versions_side_by_side(page: Any, dashboards: dict[str, str]) -> None:
    page.goto(dashboards["admin"] + "/models")
    page.select_option("#compare-form select[name=a]", "2")
    page.select_option("#compare-form select[name=b]", "1")
    page.click("#compare-form button")
    page.wait_for_selector("#compare-title", timeout=240_000)
    assert "A = v2 (Approved) · B = v1 (Approved)" in page.inner_text("#compare-title")
    rows = page.locator("#comparison tr").all_inner_texts()
    assert any("company_facts" in row and "token_f1" in row for row in rows)
    # the feedback suite staged by the previous test runs with the others (the gate reads the same prefix)
    assert any(row.startswith("feedback") and "token_f1" in row for row in rows), rows
    assert page.locator("#per-suite svg").count() == 1 and page.locator("figure.per-metric svg").count() >= 2
    assert page.locator("#flips tr").count() >= 2  # a header and a row per suite that marks answers right or wrong
    _shot(page, "compare")


def test_rollback_with_confirmation_switches_both_stages(page: Any, dashboards: dict[str, str], home: Path) -> None:
    page.goto(dashboards["admin"] + "/deploy")
    assert _serving(page, "staging") == _serving(page, "production") == "v2"
    page.click("#rollback-start button")
    assert "from version 2 back to version 1" in page.inner_text("#rollback-plan")
    _shot(page, "rollback-confirm")
    page.fill("#rollback-confirm input[name=reason]", "answers got worse")
    page.click("#rollback-confirm button")
    page.wait_for_url("**/deploy?msg=*", timeout=240_000)
    assert "rollback: Succeeded" in page.inner_text("#message")
    assert _serving(page, "staging") == _serving(page, "production") == "v1"
    _shot(page, "deploy-after-rollback")
    assert find_version(local_backend(CONFIG, home).client("sagemaker"), GROUP, 2).approval_status == "Rejected"
    page.goto(dashboards["admin"] + "/")
    assert "rolled back from version 2 to 1" in page.inner_text("#notifications")
