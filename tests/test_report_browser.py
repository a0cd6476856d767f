"""The rendered HTML report as a browser shows it: headless Chromium on the fixed fixture.

Marked ``slow`` (excluded by default): ``.venv/bin/python -m pytest tests/test_report_browser.py -m slow``.
Needs Debian's chromium at ``/usr/bin/chromium`` (``.ci/install-chromium``); skips without it.
"""

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from reports.render import write_report

CHROMIUM = Path("/usr/bin/chromium")
FIXTURE = Path(__file__).parent / "data" / "results_v3.json"
WIDTH, HEIGHT = 1280, 2000
# Headless, no sandbox (CI containers run as root), and nothing that reaches the network or
# changes between runs (no GPU compositing, background updates, sync or first-run pages).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
CHROMIUM_TIMEOUT_S = 60  # one page load takes ~1-2 s; this only stops a hung browser
# Grey-level variance of the screenshot: 0 for a blank page, ~60 for a few lines of text, ~1,300
# for the fixture's report (tables, coloured verdicts, figures).
MIN_PIXEL_VARIANCE = 20.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium package "
                                                     "with .ci/install-chromium"),
]


def _chromium(html_path: Path, profile_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local HTML file with its own throw-away profile."""
    command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args, html_path.resolve().as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def screenshot(html_path: Path, png_path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Save a ``width`` x ``height`` PNG of the top of ``html_path`` as headless Chromium renders it.

    Parameters
    ----------
    html_path : Path
        A local HTML file.
    png_path : Path
        Where to write the PNG; its folder also holds the browser's temporary profile.
    width, height : int
        Window size in CSS pixels (device scale factor 1).

    Returns
    -------
    Path
        ``png_path``.
    """
    _chromium(html_path, png_path.parent / f".{png_path.stem}-profile", f"--window-size={width},{height}",
              f"--screenshot={png_path}")
    return png_path


class _DomSummary(HTMLParser):
    """Collects the text and the ``src`` of every ``<img>`` of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.img_sources: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.img_sources.append(dict(attrs).get("src"))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> Path:
    """The fixture's report folder, rendered once for the module."""
    out_dir = tmp_path_factory.mktemp("report")
    written = write_report(results, out_dir)
    return written["index.html"]


def grey_variance(png_path: Path) -> float:
    """Variance of the grey levels (0-255) of an image: 0 for a uniform one."""
    with Image.open(png_path) as image:
        return ImageStat.Stat(image.convert("L")).var[0]


def test_screenshot_has_the_window_size_and_is_not_blank(report, tmp_path):
    png = screenshot(report, tmp_path / "report.png")
    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
    variance = grey_variance(png)
    assert variance > MIN_PIXEL_VARIANCE, f"the screenshot looks blank: grey-level variance {variance:.3g}"


def test_blank_page_counts_as_blank(tmp_path):
    # The blank check must be able to fail: an empty page is below the threshold.
    page = tmp_path / "blank.html"
    page.write_text("<!doctype html><html><body></body></html>", encoding="utf-8")
    assert grey_variance(screenshot(page, tmp_path / "blank.png")) <= MIN_PIXEL_VARIANCE


def test_rendered_dom_has_every_claim_and_only_embedded_images(report, results, tmp_path):
    # --dump-dom prints the DOM after the page loaded: what the browser built, not the file's bytes.
    dom = _DomSummary()
    dom.feed(_chromium(report, tmp_path / "profile", "--dump-dom").stdout)
    text = " ".join(dom.text)
    claim_ids = {record["claim"] for record in results["claims"]}
    assert {claim for claim in claim_ids if claim not in text} == set()
    n_figures = sum(len(((r["evidence"] or {}).get("details") or {}).get("figures", [])) for r in results["claims"])
    assert len(dom.img_sources) >= n_figures > 0
    assert [src for src in dom.img_sources if not (src or "").startswith("data:image/")] == []
