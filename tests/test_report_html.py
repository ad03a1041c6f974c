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


def _report(out: Path, *args: str) -> subprocess.CompletedProcess:
    from conftest import STYLEFARM

    result = subprocess.run([str(STYLEFARM), "report", str(out), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def _page_status_and_counts(page: Path) -> tuple[str, dict[str, int]]:
    html = page.read_text()
    counts = dict(re.findall(r"<span>(\w+): <b>(\d+)</b></span>", html))
    return re.search(r'<span class="status (\w+)">', html)[1], {k: int(v) for k, v in counts.items()}


def test_job_status_follows_the_latest_run_of_each_part_after_a_cancelled_shard(tmp_path):
    import signal

    from conftest import STYLEFARM
    from test_farm_safety import slow_plugin_env, wait_for_outputs

    env = slow_plugin_env(tmp_path, seconds=0.2)
    out = tmp_path / "out"

    def run(*args: str, seconds: str = "0") -> subprocess.CompletedProcess:
        return subprocess.run([str(STYLEFARM), "run", "wf.yaml", "--no-progress", *args], cwd=tmp_path,
                              env={**env, "ACME_SLOW_S": seconds}, capture_output=True, text=True, timeout=120)

    shard = subprocess.Popen([str(STYLEFARM), "run", "wf.yaml", "--shard", "1/2", "--no-progress"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_outputs(out, 2, shard)
    shard.send_signal(signal.SIGTERM)
    assert shard.wait(timeout=60) == 143
    assert run("--shard", "2/2").returncode == 0
    text = _report(out).stdout
    assert text.startswith("wf.yaml: cancelled;"), text  # not "failed": nothing failed, one part is unfinished

    assert run().returncode == 0  # the whole job: resumes both shards' items, does the rest
    text = _report(out).stdout
    headline = text.splitlines()[0]
    assert headline.startswith("wf.yaml: ok; 30 items recorded") and "done 30 of 30, failed 0" in headline, text
    assert re.search(r"task shard-1-of-2 +cancelled .*\(superseded by main\)", text), text
    job = json.loads(_report(out, "--json", "--html", str(tmp_path / "job.html")).stdout)
    assert job["status"] == "ok" and job["counts"] == {"items": 30, "done": 30, "failed": 0}
    assert _page_status_and_counts(tmp_path / "job.html") == ("ok", job["counts"])


def test_shards_of_a_job_read_incomplete_until_every_shard_has_run(tmp_path):
    from conftest import STYLEFARM
    from test_farm_safety import slow_plugin_env

    env = slow_plugin_env(tmp_path, seconds=0)
    out = tmp_path / "out"
    for n, (shard, missing) in enumerate((("1/3", ["2/3", "3/3"]), ("3/3", ["2/3"]), ("2/3", []))):
        status = "incomplete" if missing else "ok"
        ran = subprocess.run([str(STYLEFARM), "run", "wf.yaml", "--shard", shard, "--no-progress"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        job = json.loads(_report(out, "--json", "--html", str(tmp_path / "job.html")).stdout)
        assert job["status"] == status and job["counts"] == {"done": 10 * (n + 1), "failed": 0}
        assert job["missing"] == [f"--shard {m}" for m in missing]
        assert _page_status_and_counts(tmp_path / "job.html") == (status, job["counts"])
    assert "missing" not in _report(out).stdout


def test_failed_item_made_by_a_later_task_no_longer_fails_the_job(failed_run, cli, tmp_path):
    from farm_fixtures import _png

    job = failed_run.parent.parent
    _png(job / "stills" / "broken.png", 99)  # the operator replaces the unreadable input
    retry = cli("--log-level", "error", "run", str(job / "wf.yaml"), "--shard", "1/2", "--no-progress")
    assert retry.returncode == 0 and "done 1," in retry.stdout, retry.stdout + retry.stderr  # broken.png is first
    merged = json.loads(_report(failed_run.parent, "--json").stdout)
    assert merged["status"] == "ok" and merged["failures"] == []
    assert merged["counts"] == {"items": 5, "done": 5, "failed": 0}
    assert [t["status"] for t in merged["tasks"]] == ["partial", "ok"]
