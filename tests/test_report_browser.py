"""The report as a reader sees it: opened in headless Chromium, checked, and photographed.

Needs Debian's `chromium` and `chromium-driver` (installed by .ci/run); skips where they are absent.
Screenshots land in the test's temporary folder, or in $EDGEBENCH_SCREENSHOTS when it is set.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
EVIL = "<script>alert(1)</script>"
EVIL_IMG = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="eb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1400,1800",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from trying to download one.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path) -> list[dict]:
    """Load a page, wait for every chart to be drawn, and return its console errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page left
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.querySelectorAll('.chart')]"
        ".every(c => c.querySelector('.main-svg'))"))
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name: str, fallback_dir: Path) -> Path:
    folder = Path(os.environ.get("EDGEBENCH_SCREENSHOTS") or fallback_dir)
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height + 40, 900), 6000))
    path = folder / name
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real, non-blank page
    return path


def chart_state(driver) -> list[dict]:
    return driver.execute_script("""
      return [...document.querySelectorAll('.chart')].map(el => ({
        id: el.id,
        points: el.data.filter(t => t.meta === 'points').reduce((n, t) => n + t.x.length, 0),
        drawn: el.querySelectorAll('.scatterlayer .trace .points path.point').length,
        keys: el.data.filter(t => t.meta === 'points').flatMap(t => t.customdata),
        front: (el.data.find(t => t.meta === 'front') || {customdata: []}).customdata,
        annotations: [...el.querySelectorAll('.annotation-text')].map(a => a.textContent)}));""")


def test_report_in_chromium(tiny_run, browser, tmp_path):
    _, result = tiny_run
    rows = json.loads((result.run_dir / "report.json").read_text())["rows"]
    charted = {r["key"] for r in rows if r["status"] == "ok" and r["top1"] is not None and r["median_ms"] is not None}
    front = {r["key"] for r in rows if r["pareto"]}
    assert len(charted) >= 5 and front

    errors = open_page(browser, result.run_dir / "report.html")
    assert errors == [], errors
    charts = chart_state(browser)
    assert charts
    # One drawn point per measured candidate x runtime x precision, none twice, none missing.
    keys = [k for c in charts for k in c["keys"]]
    assert sorted(keys) == sorted(charted)
    assert sum(c["drawn"] for c in charts) == len(charted)
    # The front is marked on the chart (its own trace, and a 'ship this' arrow) and in the table.
    assert {k for c in charts for k in c["front"]} == front
    assert any("ship this" in a for c in charts for a in c["annotations"])
    table_front = browser.execute_script("return [...document.querySelectorAll('#results tr.front')].map(t => t.dataset.key)")
    assert set(table_front) == front
    ship = browser.execute_script("return document.querySelector('.ship').innerText")
    assert "\nShip " in "\n" + ship and "Why" in ship  # after the card's group label
    # Sorting by median latency puts the fastest measurement first.
    browser.execute_script("[...document.querySelectorAll('#results th')].find(t => t.innerText.startsWith('median')).click()")
    first = browser.execute_script("return document.querySelector('#results tbody tr').dataset.key")
    assert first == min((r for r in rows if r["median_ms"] is not None), key=lambda r: r["median_ms"])["key"]
    screenshot(browser, "report.png", tmp_path)


def test_hostile_names_render_as_text_in_page_and_chart(tiny_run, browser, tmp_path):
    from edgebench.report import render_run

    _, result = tiny_run
    data = json.loads((result.run_dir / "report.json").read_text())
    data["run"]["model_name"] = EVIL_IMG
    for c in data["candidates"]:
        c["name"] = EVIL
    for m in data["measurements"]:
        m["layers"] = [dict(line, layer=EVIL_IMG) for line in m.get("layers") or []]
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(data))
    paths = render_run(source, out_dir=tmp_path / "out")
    markdown = paths["markdown"].read_text()
    assert "<script>" not in markdown and "<img" not in markdown and "&lt;script&gt;" in markdown

    errors = open_page(browser, paths["html"])
    assert errors == [], errors
    text = browser.execute_script("return document.body.innerText")
    assert EVIL in text and EVIL_IMG in text  # shown as the characters they are
    assert browser.execute_script("return window.__pwned === undefined && document.querySelectorAll('img').length === 0")
    # Hover a point: the label shows the name as text, not as markup.
    hover = browser.execute_script("""
      const gd = document.getElementById('chart0');
      Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: 0}]);
      return gd.querySelector('.hoverlayer').textContent;""")
    assert EVIL in hover
    front_labels = browser.execute_script(
        "return [...document.querySelectorAll('#chart0 .scatterlayer .trace text')].map(t => t.textContent)")
    assert any(EVIL in t for t in front_labels)
    screenshot(browser, "report-hostile.png", tmp_path)


def test_comparison_in_chromium(tiny_run, host_run, browser, tmp_path):
    from edgebench.report.compare import render_comparison

    _, jetson = tiny_run
    paths = render_comparison([jetson.run_dir, host_run.run_dir], tmp_path)
    charted = []
    for run in (jetson.run_dir, host_run.run_dir):
        rows = json.loads((run / "report.json").read_text())["rows"]
        charted += [r["key"] for r in rows if r["status"] == "ok" and r["top1"] is not None and r["median_ms"] is not None]

    errors = open_page(browser, paths["comparison_html"])
    assert errors == [], errors
    charts = chart_state(browser)
    # Every measured point of both runs is drawn once; each run has its own front.
    assert sorted(k for c in charts for k in c["keys"]) == sorted(charted)
    assert sum(c["drawn"] for c in charts) == len(charted)
    fronts = browser.execute_script(
        "return document.getElementById('cmp-measured').data.filter(t => t.meta === 'front').length")
    assert fronts == 2
    links = browser.execute_script("return [...document.querySelectorAll('#runs a')].map(a => a.href)")
    assert len(links) == 2 and all(line.endswith("/report.html") for line in links)
    screenshot(browser, "comparison.png", tmp_path)
