"""The page at `/`, in headless Chromium against a real uvicorn process serving the smoke artifacts (tests that
need no browser run without Chromium too)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import INSTALL_HINT, chromium_paths, make_driver, serve, wait_for_answers

ROUTES = ("auto", "cascade")


@pytest.fixture(scope="module")
def url(smoke_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(smoke_artifacts, tmp_path_factory.mktemp("page") / "service.log") as base:
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if chromium_paths() is None:
        pytest.skip(f"browser tests need Chromium: {INSTALL_HINT}")
    browser = make_driver()
    yield browser
    browser.quit()


def _open(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))


def _rows(driver: Any, table: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return {row.get_attribute("data-variant"): row for row in rows}


def _cells(row: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


def test_page_loads_without_console_errors(driver: Any, url: str) -> None:
    driver.get_log("browser")  # drop anything logged before
    _open(driver, url)
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


def test_study_table_shows_the_manifests_figures(driver: Any, url: str, smoke_artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    served = httpx.get(url + "/variants").json()["variants"]
    _open(driver, url)
    rows = _rows(driver, "study")
    variants = {name: row for name, row in rows.items() if name not in ROUTES}
    assert sorted(variants) == sorted(v["name"] for v in served if v["available"])
    latency = manifest["latency"]["results"]
    for name, row in variants.items():
        entry = manifest["variants"][name]
        cells = _cells(row)
        assert cells[0] == name and cells[1] == entry["runtime"]
        assert cells[2] == f"{entry['size_mb']:.2f}" and cells[3] == f"{entry['metrics']['f1']:.4f}"
        assert cells[4] == f"{latency[name]['model']['p50_ms']:.2f}"
        assert cells[5] == f"{latency[name]['end_to_end']['p50_ms']:.2f}"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#plot circle")) == len(variants)
    assert sorted(p.get_attribute("data-route") for p in driver.find_elements(By.CSS_SELECTOR, "#plot polygon.route")) \
        == sorted(ROUTES)


def test_study_table_shows_the_routes(driver: Any, url: str) -> None:
    """The page's route rows are /variants' (tests/test_integration.py checks those against the manifest)."""
    routes = {row["route"]: row for row in httpx.get(url + "/variants").json()["routes"]}
    assert sorted(routes) == sorted(ROUTES)
    _open(driver, url)
    rows = _rows(driver, "study")
    for route, listed in routes.items():
        cells = _cells(rows[route])
        assert "route" in rows[route].get_attribute("class")
        assert cells[:2] == [route, f"route → {listed['answers']}"]
        assert cells[2] == f"{listed['size_mb']:.2f}"
        low, high = listed["f1_ci95"]
        assert cells[3] == f"{listed['f1']:.4f} [{low:.3f}, {high:.3f}]"
        assert cells[5] == f"mean {listed['mean_ms']:.2f}" and cells[7] == "loaded"


def test_sorting_by_a_column(driver: Any, url: str, smoke_artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, url)
    driver.find_element(By.CSS_SELECTOR, '#study th[data-key="size"]').click()
    sizes = [float(_cells(row)[2]) for row in driver.find_elements(By.CSS_SELECTOR, "#study tbody tr")]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    driver.find_element(By.CSS_SELECTOR, '#study th[data-key="size"]').click()
    again = [float(_cells(row)[2]) for row in driver.find_elements(By.CSS_SELECTOR, "#study tbody tr")]
    assert again == sorted(sizes, reverse=True)


def test_a_photo_gets_every_variants_answer_equal_to_predict(driver: Any, url: str, test_split_jpegs: list,
                                                             tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _, jpeg = test_split_jpegs[3]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg)
    _open(driver, url)
    loaded = sorted(_rows(driver, "study"))
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    rows = {row.get_attribute("data-variant"): row for row in wait_for_answers(driver, len(loaded))}
    assert sorted(rows) == loaded and set(ROUTES) <= set(rows)
    plain = httpx.post(url + "/predict/plain", files={"file": ("p.jpg", jpeg, "image/jpeg")}).json()
    for name, row in rows.items():
        expected = httpx.post(f"{url}/predict/{name}", files={"file": ("p.jpg", jpeg, "image/jpeg")}).json()
        cells = _cells(row)
        assert row.get_attribute("data-state") == "done"
        assert cells[0] == (f"{name} → {expected['variant']}" if name in ROUTES else name)
        assert cells[1] == expected["label"]
        assert cells[2] == " · ".join(f"{k} {v:.4f}" for k, v in expected["probabilities"].items())
        assert float(cells[3]) > 0 and float(cells[4]) > 0
        assert ("disagree" in row.get_attribute("class")) == (expected["label"] != plain["label"])


def test_a_non_image_shows_the_apis_error(driver: Any, url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"these are not pixels")
    expected = httpx.post(url + "/predict/plain", files={"file": ("notes.txt", notes.read_bytes(), "text/plain")})
    assert 400 <= expected.status_code < 500
    message = expected.json()["error"]["message"]
    _open(driver, url)
    driver.find_element(By.ID, "photo").send_keys(str(notes))
    rows = wait_for_answers(driver, len(_rows(driver, "study")))
    assert all(row.get_attribute("data-state") == "error" for row in rows)
    assert driver.find_element(By.ID, "try-error").text == message
    assert _cells(rows[0])[2] == message


def test_live_view_counts_requests(driver: Any, url: str, test_split_jpegs: list) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    for _, jpeg in test_split_jpegs[:3]:
        assert httpx.post(url + "/predict/onnx", files={"file": ("p.jpg", jpeg, "image/jpeg")}).status_code == 200
    summary = httpx.get(url + "/metrics/summary").json()["variants"]["onnx"]
    assert summary["requests"]["200"] >= 3 and summary["p50_ms"] > 0 and summary["p99_ms"] >= summary["p50_ms"]
    _open(driver, url)
    row = WebDriverWait(driver, 20).until(lambda d: _rows(d, "live").get("onnx"))
    cells = _cells(row)
    assert float(cells[2]) > 0 and cells[5] == "0" and cells[6] == "0"


def test_phone_width_is_one_column_without_page_overflow(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.set_window_size(390, 844)
    try:
        _open(driver, url)
        lefts = {section.location["x"] for section in driver.find_elements(By.TAG_NAME, "section")
                 if section.is_displayed()}  # the build's section shows only while a build runs beside the server
        assert len(lefts) == 1
        width = driver.execute_script("return document.documentElement.clientWidth")
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    finally:
        driver.set_window_size(1280, 1000)


def test_desktop_width_shows_every_live_column(driver: Any, url: str, test_split_jpegs: list) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    for _, jpeg in test_split_jpegs[:2]:  # the longest variant name in the live table
        answer = httpx.post(url + "/predict/transformers-pipeline", files={"file": ("p.jpg", jpeg, "image/jpeg")})
        assert answer.status_code == 200
    driver.set_window_size(1280, 1000)
    _open(driver, url)
    WebDriverWait(driver, 20).until(lambda d: _rows(d, "live").get("transformers-pipeline"))
    scroll = "return [document.querySelector('#live').parentElement.scrollWidth, " \
             "document.querySelector('#live').parentElement.clientWidth]"
    needed, shown = driver.execute_script(scroll)
    assert needed <= shown


def test_page_is_small_and_makes_no_external_requests(url: str) -> None:
    response = httpx.get(url + "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert len(response.content) < 100_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", response.text)
    assert not re.search(r"""(fetch|import)\(\s*["'`]https?:""", response.text)
