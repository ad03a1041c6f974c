"""`.stylefarm/report.html`: one self-contained page, rendered in a real headless Chromium
(Debian's `chromium` package; skipped with the reason when it is not installed)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from farm_fixtures import stills_job

from stylefarm.report_html import render, timing_chart

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=1", *args, page.as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def colourful_pixels(png: Path) -> int:
    """Pixels of strong, varied colour (photos and noise, not text, tables or the chart's bars)."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    bar = (np.abs(rgb - np.array([74, 144, 217])).sum(axis=2) < 30)  # the timing chart's bars
    return int(((spread > 25) & ~bar).sum())


@pytest.fixture
def failed_run(cli, tmp_path):
    wf = stills_job(tmp_path / "job", count=4)
    (tmp_path / "job" / "stills" / "broken.png").write_bytes(b"not a png at all")
    result = cli("--log-level", "error", "run", str(wf), "--no-progress")
    assert result.returncode == 3, result.stderr
    return tmp_path / "job" / "out" / ".stylefarm"


def test_page_is_self_contained_and_says_what_failed(failed_run):
    html = (failed_run / "report.html").read_text()
    assert "<script" not in html.lower()
    assert all(src.startswith("data:image/") for src in re.findall(r'src="([^"]*)"', html))
    assert not re.search(r'href="(?!#)', html) and "http://" not in html.replace('xmlns="http://www.w3.org', "")
    assert "broken.png" in html and "cannot read input" in html
    assert 'class="status partial"' in html and "<svg" in html and html.count("<rect ") == 2  # two steps
    wf_hash = hashlib.sha256((failed_run.parent.parent / "wf.yaml").read_bytes()).hexdigest()
    assert wf_hash in html and "contact_sheet.png" in html


@needs_chromium
def test_page_renders_in_chromium_without_console_errors_and_shows_the_sheet(failed_run, tmp_path):
    page = failed_run / "report.html"
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == [] and "Time per step" in dom.stdout and "<svg" in dom.stdout
    shot = tmp_path / "page.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1800")
    report = json.loads((failed_run / "report.json").read_text())
    bare = tmp_path / "bare.html"  # the same page without its pictures: the control
    bare.write_text(render({**report, "outputs": []}, failed_run.parent))
    bare_shot = tmp_path / "bare.png"
    chromium(bare, tmp_path / "profile", f"--screenshot={bare_shot}", "--window-size=1200,1800")
    from PIL import Image

    with Image.open(failed_run.parent / "contact_sheet.png") as sheet:
        area = sheet.width * sheet.height  # noise thumbnails: nearly every pixel is colourful
    assert colourful_pixels(shot) - colourful_pixels(bare_shot) > 0.5 * area


@needs_chromium
def test_console_check_catches_a_page_that_logs_an_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom')</script></body></html>")
    assert any("boom" in line for line in console_messages(chromium(page, tmp_path / "p", "--dump-dom").stderr))


def test_timing_chart_bars_scale_with_seconds():
    svg = timing_chart({"a": {"seconds": 2.0, "items": 4}, "b": {"seconds": 1.0, "items": 4}})
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert widths[0] == pytest.approx(2 * widths[1]) and "2.0 items/s" in svg


def test_eval_plot_and_numbers_beside_the_outputs_are_shown(tmp_path):
    from stylefarm.images import atomic_write_bytes, encode_image

    plot = np.zeros((20, 30, 3), np.float32)
    plot[:, :15] = 1.0
    atomic_write_bytes(tmp_path / "clip_styled.eval.png", encode_image(".png", plot, None, 8))
    (tmp_path / "clip_styled.eval.json").write_text(json.dumps({"warp_error": 0.0123, "frames": [1, 2]}))
    html = render({"status": "ok", "counts": {}, "outputs": []}, tmp_path)
    assert "<h2>Evaluation</h2>" in html and "clip_styled.eval.png" in html and "0.0123" in html
    assert "<h2>Evaluation</h2>" not in render({"status": "ok", "counts": {}, "outputs": []}, tmp_path / "none")


def test_merged_farm_report_lists_its_tasks():
    from stylefarm.provenance import merge_reports

    reports = [{"_file": f"report.shard-{i}-of-2.json", "status": s, "counts": {"done": 2, "skipped": 0, "failed": f},
                "failures": [{"item": "x#1", "error": "boom"}] if f else [], "steps": {"resize": {"seconds": 1.0,
                "items": 2, "batches": 1}}} for i, s, f in ((1, "ok", 0), (2, "partial", 1))]
    merged = merge_reports(reports)
    assert merged["status"] == "partial" and merged["counts"] == {"done": 4, "skipped": 0, "failed": 1}
    html = render(merged)
    assert "shard-1-of-2" in html and "shard-2-of-2" in html and "boom" in html
