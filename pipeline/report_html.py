"""The run report as one self-contained HTML page (`.stylefarm/report.html`): no scripts, no
network; pictures are inline base64, the timing chart is inline SVG. Operators open a page,
not a JSON file: status, what failed and why, where time went, what ran where, how it looks."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

from .images import IMAGE_SUFFIXES, atomic_write_bytes

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.status{padding:2px 10px;border-radius:4px;color:#fff}
.ok{background:#2a7}.partial{background:#d80}.failed{background:#c33}.running{background:#58c}
.cancelled,.incomplete{background:#777}tr.superseded td{color:#888}
.counts span{margin-right:1.5em}img{max-width:100%;border:1px solid #ccc}.thumbs img{height:120px;margin:2px}
code,pre{font:12px ui-monospace,monospace;background:#f7f7f7}pre{padding:8px;overflow:auto;max-height:400px}
"""


def _image_data_uri(path: Path, max_side: int) -> str | None:
    """The picture downscaled to `max_side` as a data: URI (None when it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90, subsampling=0)  # 4:4:4: keep colour detail
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def timing_chart(steps: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars of seconds per step, labelled with items/s (inline SVG)."""
    if not steps:
        return "<p>No step ran.</p>"
    longest = max(float(t.get("seconds") or 0) for t in steps.values()) or 1.0
    bar_h, label_w, width = 22, 180, 560
    parts = []
    for i, (name, timing) in enumerate(steps.items()):
        seconds, items = float(timing.get("seconds") or 0), timing.get("items") or 0
        w = max(1.0, (width - label_w - 150) * seconds / longest)
        y = i * (bar_h + 6)
        rate = f"{items / seconds:.1f} items/s" if seconds else ""
        parts.append(f'<text x="0" y="{y + 15}">{escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#4a90d9">'
                     f"<title>{escape(name)}: {seconds:.2f}s, {items} items</title></rect>"
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{seconds:.2f}s {rate}</text>')
    height = len(steps) * (bar_h + 6)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="seconds per step" font-size="12">{"".join(parts)}</svg>')


def _pictures(report: dict[str, Any], root: Path | None) -> str:
    outputs = [Path(p) for p in report.get("outputs", [])]
    if root is not None:
        outputs = [p if p.is_absolute() else root / p for p in outputs]
    images = [p for p in outputs if p.suffix.lower() in IMAGE_SUFFIXES]  # no stat per frame: jobs are long
    sheets = [p for p in images if "sheet" in p.stem and p.is_file()]
    images = [p for p in images[:16] if p.is_file()]
    if sheets:
        uri = _image_data_uri(sheets[0], 1600)
        if uri:
            return f'<figure><img class="sheet" alt="contact sheet" src="{uri}"><figcaption>' \
                   f"{escape(sheets[0].name)}</figcaption></figure>"
    thumbs = [(p, _image_data_uri(p, 240)) for p in images[:8]]  # a glance; decoding 4K frames costs
    cells = "".join(f'<img alt="{escape(p.name)}" title="{escape(p.name)}" src="{u}">' for p, u in thumbs if u)
    return f'<div class="thumbs">{cells}</div>' if cells else "<p>No pictures among the outputs.</p>"


def _videos(report: dict[str, Any]) -> str:
    rows = [[Path(v["path"]).name, v.get("frames"), v.get("fps"), f"{v.get('width')}x{v.get('height')}",
             v.get("codec"), v.get("audio") or "none", f"{v.get('duration') or 0:.2f}s"]
            for v in report.get("videos", [])]
    return _table(["video", "frames", "fps", "size", "codec", "audio", "duration"], rows) if rows else ""


def _workers(report: dict[str, Any]) -> str:
    rows = []
    for name, w in (report.get("workers") or {}).items():
        seconds = w.get("seconds") or w.get("busy_seconds") or 0
        rate = w.get("items_per_s") or (round(w.get("items", 0) / seconds, 2) if seconds else "")
        device = w.get("device", "?") + (f" (Ray GPU {','.join(w['gpus'])})" if w.get("gpus") else "")
        rows.append([name, w.get("node", "this host"), device, w.get("items", 0), rate,
                     w.get("failures", 0), "yes" if w.get("died") else "no"])
    return _table(["worker", "node", "device", "items", "items/s", "failures", "died"], rows)


def _tasks(tasks: list[dict[str, Any]]) -> str:
    """The runs of a farm job; a run whose items later runs redid or resumed is greyed, named by
    what superseded it (the job's status leaves it out)."""
    head = "".join(f"<th>{h}</th>" for h in ("task", "status", "done", "failed", "seconds", "superseded by"))
    rows = []
    for t in tasks:
        counts = t.get("counts") or {}
        cells = [t["task"], t.get("status"), counts.get("done", ""), counts.get("failed", ""),
                 t.get("seconds") if t.get("seconds") is not None else "", t.get("superseded_by") or ""]
        if t.get("pid") is not None:
            cells[2] = f"pid {t['pid']} on {t.get('host')} since {t.get('started')}"
        css = ' class="superseded"' if t.get("superseded_by") else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _segments(report: dict[str, Any]) -> str:
    """Segment mode: where each segment ran and how it ended."""
    rows = [[s.get("segment"), s.get("status"), s.get("worker", ""), str(s.get("node") or "")[:12],
             s.get("attempts", ""), s.get("frames_failed", ""), s.get("cpu_seconds", "")]
            for s in report.get("segments") or []]
    return _table(["segment", "status", "worker", "node", "attempts", "failed frames", "CPU s"], rows)


def _provenance(prov: dict[str, Any]) -> str:
    if not prov:
        return "<p>No provenance recorded.</p>"
    workflow = prov.get("workflow") or {}
    host = prov.get("host") or {}
    facts = [["workflow", workflow.get("path")], ["workflow sha256", workflow.get("file_sha256")],
             ["resolved options sha256", workflow.get("resolved_sha256")],
             ["command", " ".join(prov.get("command") or [])], ["host", f"{host.get('name')} ({host.get('platform')})"],
             ["device", f"requested {prov.get('device_requested')}, used {', '.join(prov.get('devices') or [])}"],
             ["torch / CUDA", f"{prov.get('torch', 'not loaded')} / {prov.get('cuda') or '-'}"],
             ["ffmpeg", prov.get("ffmpeg") or "not used"]]
    facts += [[f"distribution {k}", v] for k, v in (prov.get("distributions") or {}).items()]
    facts += [[f"seed {k}", v] for k, v in (workflow.get("seeds") or {}).items()]
    weights = [[w.get("path"), w.get("sha256") or "not on this host"] for w in prov.get("weights", [])]
    resolved = escape(json.dumps(workflow.get("resolved"), indent=2)) if workflow.get("resolved") else ""
    return (_table(["what", "value"], facts) + "<h3>Weights</h3>"
            + (_table(["file", "sha256"], weights) if weights else "<p>No weight files were loaded.</p>")
            + (f"<details><summary>Resolved workflow</summary><pre>{resolved}</pre></details>" if resolved else ""))


def _eval(report: dict[str, Any], root: Path | None) -> str:
    """Plots and headline numbers `stylefarm eval` left beside the outputs (NAME.eval.png/.json)."""
    plots = [Path(p) for p in [(report.get("eval") or {}).get("plot")] if p]
    if root is not None and root.is_dir():
        plots += sorted(root.glob("*.eval.png")) + sorted(root.glob("*/*.eval.png"))
    parts = []
    for plot in dict.fromkeys(plots):
        path = plot if plot.is_absolute() or root is None else root / plot
        uri = _image_data_uri(path, 1200) if path.is_file() else None
        if uri:
            parts.append(f'<figure><img alt="evaluation plot" src="{uri}"><figcaption>{escape(path.name)}'
                         f"</figcaption></figure>{_eval_numbers(path.with_suffix('.json'))}")
    return "<h2>Evaluation</h2>" + "".join(parts) if parts else ""


def _eval_numbers(path: Path) -> str:
    """The scalar top-level numbers of an eval JSON (per-frame lists stay in the file)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    rows = [[k, v] for k, v in data.items() if isinstance(v, (int, float, str))] if isinstance(data, dict) else []
    return _table(["metric", "value"], rows) if rows else ""


def render(report: dict[str, Any], root: Path | None = None) -> str:
    """The whole page; `root` is the output folder (relative output paths resolve against it)."""
    counts, status = report.get("counts", {}), str(report.get("status", "?"))
    failures = [[f.get("task", ""), f.get("item"), f.get("error")] for f in report.get("failures", [])]
    sections = [
        f"<h1>stylefarm run: {escape(str(report.get('workflow')))}</h1>",
        f'<p><span class="status {escape(status)}">{escape(status)}</span> started '
        f"{escape(str(report.get('started', '')))} &middot; {float(report.get('seconds') or 0):.1f}s</p>",
        '<p class="counts">' + "".join(f"<span>{escape(k)}: <b>{escape(str(v))}</b></span>" for k, v in counts.items())
        + "</p>",
        "<h2>Failures</h2>" + (_table(["task", "item", "error"], failures) if failures else "<p>None.</p>"),
        ("<h2>Farm tasks</h2>" + _tasks(report["tasks"])) if report.get("tasks") else "",
        "<h2>Time per step</h2>" + timing_chart(report.get("steps") or {}),
        "<h2>Workers</h2>" + _workers(report),
        ("<h2>Segments</h2>" + _segments(report)) if report.get("segments") else "",
        "<h2>Results</h2>" + _pictures(report, root),
        ("<h2>Videos</h2>" + _videos(report)) if report.get("videos") else "",
        _eval(report, root),
        "<h2>Provenance</h2>" + _provenance(report.get("provenance") or {}),
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>stylefarm report: {escape(status)}'
            f'</title><style>{STYLE}</style></head><body>{"".join(sections)}</body></html>')


def write_html(report: dict[str, Any], path: Path, root: Path | None = None) -> Path:
    """Write the page atomically; `root` defaults to the folder holding `.stylefarm`."""
    if root is None and path.parent.name == ".stylefarm":
        root = path.parent.parent
    atomic_write_bytes(path, render(report, root).encode("utf-8"))
    return path
