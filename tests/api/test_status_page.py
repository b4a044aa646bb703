"""The status page in headless Chromium: it lists the loaded models, its
tokens/s chart moves after a request, errors show up; a screenshot is kept."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, Server, chat_body

ARTIFACTS = Path(os.environ.get("BODEGA_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium is missing: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("the page did not get there in time")


def test_the_status_page_shows_models_charts_and_errors(server: Server, browser: Any) -> None:
    browser.get(server.url + "/")

    def row(model: str) -> Any:
        rows = browser.find_elements("css selector", f'#models tr[data-model="{model}"]')
        return rows[0] if rows else None

    lm = wait_for(lambda: row("smollm2-135m"))
    assert "running" in lm.text and "llamacpp" in lm.text
    assert row("all-minilm-l6-v2") is not None and row("whisper-tiny.en") is not None
    assert browser.find_element("id", "connection").text == "live"

    reply = server.client.post(
        "/v1/chat/completions",
        json=chat_body("Tell me a story", model="smollm2-135m", max_tokens=24),
        timeout=120,
    )
    assert reply.status_code == 200
    tps = browser.find_element("id", "tps")
    peak = wait_for(lambda: float(tps.get_attribute("data-peak") or 0))
    assert peak > 0  # the tokens/s chart drew the request
    ttft = browser.find_element("id", "ttft")
    assert int(ttft.get_attribute("data-points") or 0) > 0

    server.client.post("/v1/chat/completions", json={"model": "no-such-model", "messages": []})
    errors = browser.find_element("id", "errors")
    wait_for(lambda: "no-such-model" in errors.text or "messages" in errors.text)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
