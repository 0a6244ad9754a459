"""The dashboard's web app (Starlette + Jinja2; HTMX for polling): routes, the token guard, errors as pages.

Pages are rendered on the server; every action is a plain form POST answered with a redirect (a job's page
for long ones). An error from AWS or the runtime is shown as a page with its message, never a traceback.
"""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipelines.deploy.rollback import RollbackError
from pipelines.ui import actions, pages
from pipelines.ui.roles import ROLE_LABELS, NotAllowed
from pipelines.ui.state import UiState

HERE = Path(__file__).parent
TOKEN_COOKIE = "continuum_ui_token"
SCREENS = (("/", "Home"), ("/data", "Data"), ("/runs", "Runs"), ("/models", "Models"), ("/benchmarks", "Benchmarks"),
           ("/deploy", "Deploy"), ("/monitoring", "Monitoring"), ("/feedback", "Feedback"))


def _filters(templates: Jinja2Templates) -> None:
    def num(value: Any, digits: int = 4) -> str:
        return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)

    def signed(value: Any) -> str:
        return "—" if value is None else f"{value:+.4f}"

    def pct(value: Any) -> str:
        return "—" if value is None else f"{value:.1%}"

    templates.env.filters.update(num=num, signed=signed, pct=pct, short=lambda text, n=12: str(text or "")[:n])


class TokenGuard(BaseHTTPMiddleware):
    """With a token set: `?token=` once (it becomes a cookie) or `Authorization: Bearer`; else 401."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        state: UiState = request.app.state.ui
        if state.token is None or request.url.path.startswith("/static/"):
            return await call_next(request)
        given = (request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not given or not hmac.compare_digest(given, state.token):
            return HTMLResponse("<h1>401</h1><p>this dashboard needs its token: open it with ?token=…</p>", 401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, state.token, httponly=True, samesite="strict")
        return response


def create_app(state: UiState) -> Starlette:
    from pipelines.ui.charts import warm_up

    warm_up()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    _filters(templates)

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        base = {"identity": state.identity, "screens": SCREENS, "path": request.url.path, "config": state.config,
                "backend": state.backend, "message": request.query_params.get("msg"),
                "roles": ROLE_LABELS}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    def back(url: str, message: str) -> RedirectResponse:
        return RedirectResponse(f"{url}{'&' if '?' in url else '?'}msg={quote(message)}", status_code=303)

    def screen(name: str, read: Any) -> Any:
        def endpoint(request: Request) -> Response:
            return render(request, name, read(state))
        return endpoint

    def run_detail(request: Request) -> Response:
        return render(request, "run.html", pages.run_detail(state, request.path_params["pipeline"],
                                                            request.path_params["execution"]))

    def model_detail(request: Request) -> Response:
        return render(request, "model.html", pages.model_detail(state, int(request.path_params["version"])))

    def model_report(request: Request) -> Response:
        from pipelines.ui.reads import split_uri

        detail = pages.model_detail(state, int(request.path_params["version"]))
        if not detail["report"]:
            raise LookupError(f"version {detail['version'].version} has no evaluation report")
        bucket, key = split_uri(detail["report"])
        return HTMLResponse(state.s3().get_object(Bucket=bucket, Key=key)["Body"].read())

    async def approval(request: Request) -> Response:
        form = await request.form()
        number = int(request.path_params["version"])
        message = actions.approve(state, number, str(form.get("decision", "")), str(form.get("comment", "")))
        return back(f"/models/{number}", message)

    async def start_run(request: Request) -> Response:
        form = await request.form()
        job = actions.start_run(state, str(form.get("pipeline", "training")), str(form.get("data_source", "")),
                                str(form.get("parameters", "")))
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    async def start_deploy(request: Request) -> Response:
        return RedirectResponse(f"/jobs/{actions.deploy(state).id}", status_code=303)

    def rollback_confirm(request: Request) -> Response:
        state.identity.require("rollback")
        return render(request, "rollback.html", pages.rollback_plan(state))

    async def rollback(request: Request) -> Response:
        form = await request.form()
        if form.get("confirm") != "yes":
            return back("/deploy", "rollback not confirmed: nothing changed")
        return RedirectResponse(f"/jobs/{actions.rollback(state, str(form.get('reason', ''))).id}", status_code=303)

    async def compare(request: Request) -> Response:
        form = await request.form()
        job = actions.compare(state, str(form.get("a", "")), str(form.get("b", "")))
        return RedirectResponse(f"/compare/{job.id}", status_code=303)

    def compare_result(request: Request) -> Response:
        job = state.jobs.get(request.path_params["job"])
        if job.status != "Succeeded":
            return render(request, "job.html", {"job": job})
        return render(request, "compare.html", {"job": job, **pages.comparison(state, job.result)})

    async def feedback(request: Request) -> Response:
        form = await request.form()
        message = actions.give_feedback(state, str(form.get("endpoint", "")), str(form.get("event_id", "")),
                                        int(str(form.get("index", "0"))), str(form.get("right_answer", "")),
                                        str(form.get("comment", "")))
        return back("/feedback", message)

    def job_page(request: Request) -> Response:
        job = state.jobs.get(request.path_params["job"])
        if request.headers.get("hx-request") and job.done and job.link:  # htmx follows to the outcome
            text = f"{job.title}: {job.status}" + (f" — {job.message}" if job.message else "")
            return Response(headers={"HX-Redirect": f"{job.link}{'&' if '?' in job.link else '?'}msg={quote(text)}"})
        template = "job_status.html" if request.headers.get("hx-request") else "job.html"
        return render(request, template, {"job": job})

    def failure(request: Request, exc: Exception, status: int, title: str) -> Response:
        return render(request, "error.html", {"title": title, "error": str(exc) or type(exc).__name__}, status)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return failure(request, exc, 403, "Not allowed")

    async def not_found(request: Request, exc: Exception) -> Response:
        return failure(request, exc, 404, "Not found")

    async def bad_request(request: Request, exc: Exception) -> Response:
        return failure(request, exc, 400, "Cannot do that")

    async def server_error(request: Request, exc: Exception) -> Response:
        return failure(request, Exception(f"{type(exc).__name__}: {exc}"), 500, "Error from AWS or the runtime")

    routes = [Route(path, screen(f"{name.lower()}.html", getattr(pages, name.lower()))) for path, name in SCREENS
              if path != "/feedback"]
    routes.append(Route("/feedback", lambda request: render(request, "feedback.html", pages.feedback(
        state, request.query_params.get("q", "")))))
    routes += [
        Route("/runs/start", start_run, methods=["POST"]),
        Route("/runs/{pipeline}/{execution}", run_detail),
        Route("/models/{version:int}", model_detail),
        Route("/models/{version:int}/report", model_report),
        Route("/models/{version:int}/approval", approval, methods=["POST"]),
        Route("/compare", compare, methods=["POST"]),
        Route("/compare/{job}", compare_result),
        Route("/deploy/start", start_deploy, methods=["POST"]),
        Route("/deploy/rollback", rollback_confirm),
        Route("/deploy/rollback", rollback, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/jobs/{job}", job_page),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(TokenGuard)], exception_handlers={
        NotAllowed: not_allowed, LookupError: not_found, ValueError: bad_request, RollbackError: bad_request,
        Exception: server_error})
    app.state.ui = state
    return app
