"""Headless Chromium against a real uvicorn process: helpers for the page tests, and the screenshot command.

``python -m tests.browser screenshot --artifacts artifacts --out docs/page.png`` serves the artifacts,
opens ``/`` at desktop width, tries a synthetic picture (drawn here, so no dataset photo ends up in the
repository) and saves a screenshot. It needs Debian's ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path
from typing import Any

from tests.live_server import serve

__all__ = ["INSTALL_HINT", "chromium_paths", "make_driver", "serve", "synthetic_picture", "wait_for_answers"]

INSTALL_HINT = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) when both are installed, else None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def make_driver(width: int = 1280, height: int = 1000) -> Any:
    """Headless Chromium with browser console logging; Selenium Manager is never asked to download anything."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError(f"no headless browser: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))


def synthetic_picture(path: Path) -> Path:
    """A drawn picture (sky, ground, a round face with ears): not from the dataset, safe to show in docs."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 170, 320, 240), fill=(90, 150, 70))
    draw.polygon([(110, 70), (130, 20), (150, 70)], fill=(200, 140, 70))
    draw.polygon([(170, 70), (190, 20), (210, 70)], fill=(200, 140, 70))
    draw.ellipse((100, 50, 220, 170), fill=(215, 155, 85))
    draw.ellipse((130, 90, 145, 105), fill=(20, 20, 20))
    draw.ellipse((175, 90, 190, 105), fill=(20, 20, 20))
    draw.polygon([(152, 120), (168, 120), (160, 130)], fill=(90, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


def wait_for_answers(driver: Any, count: int, timeout_s: float = 120) -> list[Any]:
    """The answers table's rows once ``count`` of them have finished (answered or errored)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(d: Any) -> list[Any] | bool:
        rows = d.find_elements(By.CSS_SELECTOR, "#answers tbody tr")
        done = [r for r in rows if r.get_attribute("data-state") in ("done", "error")]
        return rows if len(rows) == count and len(done) == count else False

    return WebDriverWait(driver, timeout_s).until(finished)


def screenshot(artifacts: Path, out: Path) -> None:
    import tempfile

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp, serve(artifacts, Path(tmp) / "service.log") as url:
        driver = make_driver(1280, 1500)
        try:
            driver.get(url + "/")
            WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
            loaded = len(driver.find_elements(By.CSS_SELECTOR, "#study tbody tr:not(.unavailable)"))
            driver.find_element(By.ID, "photo").send_keys(str(synthetic_picture(Path(tmp) / "picture.jpg")))
            wait_for_answers(driver, loaded, timeout_s=600)
            driver.execute_script("return new Promise(r => setTimeout(r, 3500))")  # one live refresh
            driver.set_window_size(1280, driver.execute_script("return document.documentElement.scrollHeight") + 40)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.browser", description=__doc__)
    p.add_argument("action", choices=("screenshot",))
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=Path("docs/page.png"))
    args = p.parse_args(argv)
    screenshot(args.artifacts, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
