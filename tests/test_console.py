"""The operator's console at ``/console``, in a real headless Chromium (Debian's ``chromium``,
driven by Playwright) against the session gateway: it loads without console errors, lists every
algorithm, runs a task from the form it builds from the schema and follows it to the end, cancels a
slow one, and shows actors, pipelines and workers. Screenshots go to ``tests/artifacts/console/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.conftest import ROOT, Running

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own browser download is not used
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "console"
LONG_S = 60_000  # ms: a task's run, or a poll of the page (every 2 s) that follows it
SLOW = "test-sleep-async"  # a long job that sleeps for as long as it is asked


@dataclass
class Console:
    page: Page
    errors: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    async def tab(self, name: str) -> None:
        await self.page.click(f"#tabs button[data-tab={name}]")
        await expect(self.page.locator(f"section#{name}")).to_be_visible()


def _error(message: ConsoleMessage) -> str | None:
    """An error the page logged. Allowed: a 404 from ``/metrics`` (a gateway may not serve it: the page
    then shows a dash for load and stops asking), and a 503 from ``/healthz``, its answer while an
    application (re)deploys, which the page reads as the report it is (the browser logs it anyway)."""
    url = message.location.get("url", "")
    if message.type != "error" or (url.endswith("/metrics") and "404" in message.text) or (
            url.endswith("/healthz") and "503" in message.text):
        return None
    return f"{message.text} ({url})"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # the README's test command needs only Python; CI (.ci/run) installs it
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the console's browser tests")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def console(server: Running, browser: Browser) -> AsyncIterator[Console]:
    """The console in a fresh tab, the token given once in its dialog."""
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    opened = Console(page)

    def logged(message: ConsoleMessage) -> None:
        if error := _error(message):
            opened.errors.append(error)

    page.on("console", logged)
    page.on("pageerror", lambda exc: opened.errors.append(f"uncaught: {exc}"))
    await page.goto(f"{server.url}/console")
    await expect(page.locator("#token-dialog")).to_be_visible()
    await page.fill("#token-input", server.token)
    await page.click("#token-form button[type=submit]")
    yield opened
    await page.close()


async def test_the_page_is_served_without_the_token_and_data_needs_it(server: Running):
    async with httpx.AsyncClient(base_url=server.url) as http:
        page, script = await http.get("/console"), await http.get("/console/console.js")
        refused = await http.get("/algorithms")
    assert page.status_code == 200 and 'data-auth="bearer"' in page.text
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert refused.status_code == 401


async def test_the_console_lists_every_algorithm_with_its_status(server: Running, console: Console):
    rows = console.page.locator("#algorithms tbody tr[data-name]")
    await expect(rows).to_have_count(len(server.gateway.registry.names()))
    shown = set(await rows.evaluate_all("rows => rows.map(r => r.dataset.name)"))
    assert shown == set(server.gateway.registry.names())
    await expect(console.page.locator(f"tr[data-name='{SLOW}'] .badge")).to_have_text("RUNNING", timeout=LONG_S)
    await expect(console.page.locator("#summary")).to_contain_text("gateway")
    await console.shot("algorithms")
    assert console.errors == []


async def test_a_task_from_the_generated_form_runs_to_completion(server: Running, console: Console):
    page = console.page
    await page.click(f"#algorithms tr[data-name='{SLOW}']")
    form = page.locator(f"#panel form.try[data-algorithm='{SLOW}']")
    await form.locator("input[name=seconds]").fill("0.3")
    await form.locator("button[name=submit-task]").click()

    await expect(page.locator("#panel-title")).to_contain_text("Task ")
    await expect(page.locator("#panel-body .badge").first).to_have_text("completed", timeout=LONG_S)
    await expect(page.locator("#panel-body pre.json").first).to_contain_text('"slept": 0.3')
    task_id = await page.locator("#panel-body dd .mono").inner_text()
    await console.shot("task-completed")
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        record = (await http.get(f"/tasks/{task_id}")).json()
    assert (record["status"], record["payload"]["seconds"], record["result"]) == ("completed", 0.3, {"slept": 0.3})
    assert console.errors == []


async def test_limits_are_changed_from_the_settings_form(server: Running, console: Console):
    """The operator's form sends only what changed, shows Serve's answer and a refusal's rule."""
    page = console.page
    await page.click("#algorithms tr[data-name='test-live']")
    form = page.locator("#panel form.settings")
    try:
        await form.locator("input[name=max_concurrency]").fill("6")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".answer")).to_contain_text('"max_concurrency": 6', timeout=LONG_S)
        await expect(page.locator("#algorithms tr[data-name='test-live']")).to_contain_text("6")
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
            limits = (await http.get("/admin/algorithms/test-live")).json()
        assert limits["current"]["max_concurrency"] == 6 and limits["changed"] == ["max_concurrency"]
        await console.shot("settings")
        form = page.locator("#panel form.settings")
        await form.locator("input[name=num_workers]").fill("7")  # more replicas than max_concurrency allows
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".answer.bad")).to_contain_text("max_concurrency: must be >= num_workers (7)")
    finally:
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=120) as http:
            assert (await http.delete("/admin/algorithms/test-live/limits")).status_code == 200
    # the browser reports the refused request itself; nothing else went wrong
    assert [e for e in console.errors if "status of 422" not in e] == [] and len(console.errors) == 1


async def test_a_running_task_is_cancelled_from_the_tasks_table(server: Running, console: Console):
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        task_id = (await http.post(f"/tasks/{SLOW}", json={"seconds": 90})).json()["task_id"]
        page = console.page
        await console.tab("tasks")
        await page.select_option("#task-filter select[name=algorithm]", SLOW)
        row = page.locator(f"#tasks tr[data-task='{task_id}']")
        await expect(row.locator(".badge")).to_have_text(re.compile("queued|running"), timeout=LONG_S)
        await row.click()
        await page.locator("#panel button[name=cancel]").click()
        await expect(row.locator(".badge")).to_have_text("cancelled", timeout=LONG_S)
        await expect(page.locator("#panel-body .badge").first).to_have_text("cancelled", timeout=LONG_S)
        await console.shot("task-cancelled")
        record = (await http.get(f"/tasks/{task_id}")).json()
    assert (record["status"], record["error"]["type"]) == ("cancelled", "cancelled")
    assert console.errors == []


async def test_actors_pipelines_and_workers_are_shown(server: Running, console: Console):
    actor_id = f"console-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        bound = await http.post("/register", json={"template_name": "TestCounter", "actor_id": actor_id})
        pipelines = (await http.get("/pipelines")).json()
    assert bound.status_code == 200, bound.text
    page = console.page

    await console.tab("actors")
    await expect(page.locator("#actor-templates tr[data-template=TestCounter]")).to_contain_text("add")
    await expect(page.locator("#actor-list tbody")).to_contain_text(actor_id)
    await console.shot("actors")

    await console.tab("pipelines")
    if pipelines:
        await expect(page.locator("#pipelines tr[data-pipeline]")).to_have_count(len(pipelines))
    else:
        await expect(page.locator("#pipelines td.empty")).to_contain_text("no pipelines")
    await console.shot("pipelines")

    await console.tab("workers")
    for kind in ("gateway", "task-worker"):
        await expect(page.locator("#worker-list tbody tr", has_text=kind).first).to_be_visible()
    await expect(page.locator("#phase-list tbody tr", has_text="task store")).to_contain_text("ready")
    await console.shot("workers")
    assert console.errors == []
