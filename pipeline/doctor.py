"""`stylefarm doctor`: check an install the way a farm admin would before rolling it out.

Each check is a line: ok / warn / fail, what was found, and the fix. Nothing is installed or
downloaded; torch is imported (that is the point of checking it), Ray and Dask are not (their
installed versions are read from the package metadata).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

# Licence of each encoder as built into FFmpeg (the library it wraps decides).
ENCODER_LICENCES = {
    "libx264": "GPL", "libx264rgb": "GPL", "libx265": "GPL", "libxvid": "GPL", "libxavs2": "GPL",
    "libvpx-vp9": "BSD", "libvpx": "BSD", "libaom-av1": "BSD", "libsvtav1": "BSD", "librav1e": "BSD",
    "libopenh264": "BSD", "libwebp": "BSD", "libopus": "BSD", "libvorbis": "BSD",
    "libmp3lame": "LGPL", "prores_ks": "LGPL", "ffv1": "LGPL", "dnxhd": "LGPL", "mpeg4": "LGPL",
    "png": "LGPL", "aac": "LGPL", "h264_nvenc": "LGPL (+NVIDIA driver)", "hevc_nvenc": "LGPL (+NVIDIA driver)",
    "libfdk_aac": "non-free",
}


@dataclass
class Check:
    level: str  # ok | warn | fail
    name: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


def check_ffmpeg() -> list[Check]:
    """The binary, its version and build licence, and which encoders (with licences) it has."""
    from .video.ffmpeg import INSTALL_HINT, ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        version = _run([exe, "-hide_banner", "-version"])
    except Exception as exc:
        return [Check("fail", "ffmpeg", f"no usable ffmpeg: {str(exc).splitlines()[0]}", INSTALL_HINT)]
    first = version.splitlines()[0] if version else "?"
    build = "GPL build" if "--enable-gpl" in version else "LGPL build"
    if "--enable-nonfree" in version:
        build = "non-free build (not redistributable)"
    checks = [Check("ok", "ffmpeg", f"{exe}: {first.split(' Copyright')[0]} ({build})")]
    found = set(re.findall(r"^ [VAS][\w.]{5} (\S+)", _run([exe, "-hide_banner", "-encoders"]), flags=re.M))
    known = {name: lic for name, lic in ENCODER_LICENCES.items() if name in found}
    gpl = [f"{n} ({lic})" for n, lic in known.items() if lic == "GPL"]
    free = [f"{n} ({lic})" for n, lic in known.items() if lic in ("LGPL", "BSD")]
    checks.append(Check("ok", "encoders", "GPL: " + (", ".join(gpl) or "none") + "; LGPL/BSD: "
                        + (", ".join(free) or "none")))
    if "libx264" not in found:
        checks.append(Check("warn", "libx264", "missing: the default mp4 codec of `output.video`",
                            "use an ffmpeg built with libx264, or set output.video.codec (e.g. libopenh264, "
                            "libvpx-vp9, prores_ks)"))
    if gpl:
        checks.append(Check("warn", "licences", "GPL encoders in use make distributed outputs/binaries GPL-bound",
                            "for a GPL-free pipeline choose an LGPL/BSD codec (libopenh264, libvpx-vp9, libaom-av1, "
                            "prores_ks, ffv1) and an LGPL ffmpeg build"))
    return checks


def check_torch() -> list[Check]:
    try:
        import torch
    except Exception as exc:
        return [Check("fail", "torch", f"cannot import torch: {exc}", "pip install torch")]
    cuda = torch.version.cuda
    if cuda is None:
        return [Check("warn", "torch", f"torch {torch.__version__} is a CPU-only build",
                      "GPU nodes need a CUDA build: pip install torch --index-url "
                      "https://download.pytorch.org/whl/cu124 (pick your CUDA)")]
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as exc:  # driver/runtime mismatch shows up here
        return [Check("fail", "cuda", f"torch {torch.__version__} (CUDA {cuda}): {exc}",
                      "install an NVIDIA driver that supports this CUDA runtime, or a torch built for the driver")]
    if count == 0:
        return [Check("warn", "cuda", f"torch {torch.__version__} (CUDA {cuda}) sees no GPU",
                      "on GPU nodes check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES; CPU-only nodes are fine")]
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))  # untested on CUDA
    return [Check("ok", "cuda", f"torch {torch.__version__}, CUDA {cuda}, {count} GPU(s): {names}")]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_backends() -> list[Check]:
    checks = []
    ray = _version("ray")
    checks.append(Check("ok", "ray", f"ray {ray}") if ray else
                  Check("warn", "ray", "not installed (needed only for backend: ray)", "pip install 'stylefarm[ray]'"))
    dask, distributed = _version("dask"), _version("distributed")
    if dask and distributed and dask != distributed:
        checks.append(Check("warn", "dask", f"dask {dask} but distributed {distributed}",
                            "install matching versions: pip install 'dask[distributed]==<one version>'"))
    elif dask and distributed:
        checks.append(Check("ok", "dask", f"dask {dask}, distributed {distributed}"))
    else:
        checks.append(Check("warn", "dask", "not installed (needed only for backend: dask)",
                            "pip install 'stylefarm[dask]'"))
    return checks


def check_plugins(host) -> list[Check]:
    checks = []
    for info in host.plugins:
        if info.error:
            checks.append(Check("fail", f"plugin {info.name}", f"from {info.distribution} {info.version} failed to "
                                f"load: {info.error}", f"reinstall or upgrade {info.distribution} (pip install -U "
                                f"{info.distribution}), or uninstall it"))
    ok = [p for p in host.plugins if not p.error]
    checks.append(Check("ok", "plugins", f"{len(ok)} loaded, {len(host.steps)} steps"))
    return checks


def check_weights(host) -> list[Check]:
    from . import weights as wm
    from .errors import StylefarmError

    checks, present, verified = [], 0, 0
    for name, wf in sorted(host.weights.items()):
        try:
            path = wm.resolve(name)
        except wm.PackagedWeightsError as exc:  # one plugin's bad `packaged=`: its own failed line
            checks.append(Check("fail", f"weights {name}", exc.problem, exc.fix.replace("`", "")))
            continue
        except StylefarmError:
            where = f" (download: {wf.url})" if wf.url else ""
            checks.append(Check("warn", f"weights {name}", f"{wf.filename} not found{where}",
                                f"stylefarm weights add {name} /path/to/{wf.filename}"))
            continue
        try:
            wm.verify(name, path)
        except StylefarmError as exc:
            checks.append(Check("fail", f"weights {name}", str(exc), f"stylefarm weights add {name} /path/to/"
                                f"{wf.filename} (a good copy)"))
            continue
        present += 1
        shipped = _packaged_problem(wf)
        if shipped:  # found in this cache, but nodes without the cached copy will fail
            checks.append(Check("warn", f"weights {name}", f"{path} present, but {shipped}",
                                "the plugin must fix its WeightFile(packaged=...)"))
        if not wf.sha256:
            checks.append(Check("warn", f"weights {name}", f"{path} present, no sha256 declared to verify it",
                                "the plugin should declare WeightFile(sha256=...)"))
        verified += bool(wf.sha256)
    checks.append(Check("ok", "weights", f"{present} of {len(host.weights)} present, {verified} of them verified "
                                         "against a declared sha256"))
    return checks


def _packaged_problem(wf) -> str:
    """Why `wf`'s packaged copy cannot be read, '' when it can or none is declared."""
    from . import weights as wm

    try:
        wm.packaged_path(wf)
    except wm.PackagedWeightsError as exc:
        return exc.problem
    return ""


def _writable(what: str, directory: Path) -> Check:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".doctor.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Check("fail", what, f"{directory} is not writable: {exc.strerror or exc}",
                     f"fix its permissions or point {'STYLEFARM_WEIGHTS_DIR' if 'weights' in what else 'TMPDIR'} "
                     "at a writable folder")
    return Check("ok", what, f"{directory} writable")


def check_dirs() -> list[Check]:
    from .weights import cache_dir

    return [_writable("weights cache", cache_dir()), _writable("temp dir", Path(tempfile.gettempdir()))]


def run_checks() -> list[Check]:
    from . import __version__
    from .host import get_host

    checks = [Check("ok", "stylefarm", f"stylefarm {__version__}")]
    try:
        host = get_host()
    except Exception as exc:  # e.g. two plugins registering the same step name
        checks.append(Check("fail", "plugins", str(exc).splitlines()[0], "uninstall one of the conflicting plugins"))
        host = None
    checks += check_ffmpeg() + check_torch() + check_backends()
    if host is not None:
        checks += check_plugins(host) + check_weights(host)
    return checks + check_dirs()


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{c.level:<4}  {c.name:<22} {c.message}")
        if c.fix and c.level != "ok":
            lines.append(f"{'':28}fix: {c.fix}")
    fails, warns = sum(c.level == "fail" for c in checks), sum(c.level == "warn" for c in checks)
    lines.append(f"{fails} failed, {warns} warnings, {len(checks) - fails - warns} ok")
    return "\n".join(lines)
