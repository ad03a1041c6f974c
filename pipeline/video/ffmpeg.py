"""Finding and running the ffmpeg binary.

Resolution order: env `STYLEFARM_FFMPEG` (an explicit path; an error if it is wrong), then a
system ffmpeg when `STYLEFARM_PREFER_SYSTEM_FFMPEG=1` and one is on PATH, then the static
binary shipped by imageio-ffmpeg (no system install needed). ffprobe is optional: it is used
only when the system ffmpeg is preferred and an ffprobe sits beside it on PATH.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import StylefarmError

INSTALL_HINT = ("install it with `pip install imageio-ffmpeg` (ships a static ffmpeg), or point "
                "STYLEFARM_FFMPEG at an ffmpeg executable")
QUIET = ["-hide_banner", "-nostats", "-loglevel", "error"]
TAGGED = [*QUIET[:-1], "level+error"]  # the same lines, each tagged with its level (see `last_error`)
PACED = [*QUIET[:-1], "level+info"]  # showinfo's per-frame lines too, each tagged with its level
PIPE_BYTES = 1 << 20
"""Frame pipes are widened to this (Linux `F_SETPIPE_SZ`; 1 MiB is what an unprivileged process
may ask by default): a 720p frame then crosses in 2 chunks, not 22 of the default 64 KiB, each a
wake-up of the other side. Identity 720p transcode: 0.5 s less system CPU per minute of video."""
F_SETPIPE_SZ = 1031


class FfmpegMissing(StylefarmError):
    """No usable ffmpeg binary; the message says how to get one."""


class FfmpegError(StylefarmError):
    """ffmpeg ran but failed; the message carries its last error line."""


def prefer_system() -> bool:
    return os.environ.get("STYLEFARM_PREFER_SYSTEM_FFMPEG", "").lower() in ("1", "true", "yes")


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use (see the module docstring for the order)."""
    explicit = os.environ.get("STYLEFARM_FFMPEG")
    if explicit:
        return _check(explicit, "STYLEFARM_FFMPEG")
    if prefer_system() and shutil.which("ffmpeg"):
        return shutil.which("ffmpeg")
    bundled = _bundled()
    if bundled and facts(bundled):
        return bundled
    try:
        import imageio_ffmpeg

        return _check(imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg")
    except (ImportError, RuntimeError) as exc:
        raise FfmpegMissing(f"ffmpeg not found ({exc}); {INSTALL_HINT}") from None


def _bundled() -> str | None:
    """imageio-ffmpeg's own binary, found as its `get_ffmpeg_exe` finds it but without the
    `-version` run that call makes in every process (`facts` checks the binary once per machine);
    None sends the caller to `get_ffmpeg_exe` (its conda and PATH fallbacks, its errors)."""
    explicit = os.environ.get("IMAGEIO_FFMPEG_EXE")
    if explicit:
        return explicit
    try:
        from imageio_ffmpeg import binaries
        from imageio_ffmpeg._definitions import FNAME_PER_PLATFORM, get_platform
    except ImportError:  # not installed, or a version laid out differently
        return None
    name = FNAME_PER_PLATFORM.get(get_platform())
    path = Path(binaries.__file__).parent / name if name else None
    return str(path) if path and path.is_file() else None


@dataclass(frozen=True)
class Facts:
    """What the pipeline needs to know of an ffmpeg binary."""

    version: str  # first line of its banner, as `ffmpeg -version` prints it
    showinfo_checksum: bool  # showinfo takes `checksum=0` (plane checksums cost ~1 ms a 720p frame)
    codecs: dict[str, str]  # its video encoders (`ffmpeg -encoders`) -> the codec each writes (libx264 -> h264)
    pix_fmts: tuple[str, ...]  # pixel formats it can write (`ffmpeg -pix_fmts`): a workflow's pix_fmt is checked

    @property
    def encoders(self) -> tuple[str, ...]:
        """Its video encoders: a workflow's codec is checked against them."""
        return tuple(self.codecs)


def facts(path: str) -> Facts | None:
    """The binary's facts, None if it is missing or does not start. A run of `ffmpeg -h
    filter=showinfo` tells that it starts, its version (the banner) and showinfo's options, runs
    of `-encoders` and `-pix_fmts` what it can write, and the answer is kept in the user cache by
    the binary's identity (path, size, mtime, machine): a later process starts no ffmpeg to learn
    them. It replaced three runs per process (the imageio-ffmpeg check, this help, the report's
    `-version`), ~35 ms of a short job's start."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _facts(f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}|{os.uname().machine}", path)


@lru_cache(maxsize=8)
def _facts(key: str, path: str) -> Facts | None:
    store = store_path("ffmpeg.json")
    known = read_store(store)
    if isinstance(known.get(key), dict):
        try:
            entry = known[key]
            return Facts(**{**entry, "pix_fmts": tuple(entry["pix_fmts"])})
        except (TypeError, KeyError):  # written by another version: ask the binary again
            pass
    try:
        proc = subprocess.run([path, "-h", "filter=showinfo"], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return None
        listing, formats = (subprocess.run([path, "-hide_banner", what], capture_output=True, timeout=30,
                                           stdin=subprocess.DEVNULL) for what in ("-encoders", "-pix_fmts"))
    except (OSError, subprocess.TimeoutExpired):
        return None
    banner = proc.stderr.decode("utf-8", "replace").splitlines()
    encoders = re.findall(r"^ V[A-Z.]{5} (\S+) +(.*)$", listing.stdout.decode("utf-8", "replace"), re.M)
    if listing.returncode != 0:
        encoders = []
    codecs = {name: _made_codec(name, text) for name, text in encoders}
    pix_fmts = re.findall(r"^[.I]O[.H][.P][.B] (\w+)", formats.stdout.decode("utf-8", "replace"), re.M)
    found = Facts(banner[0].strip() if banner else "", "checksum" in proc.stdout.decode("utf-8", "replace"),
                  codecs, tuple(pix_fmts) if formats.returncode == 0 else ())
    if store is not None:
        known = {k: v for k, v in known.items() if not k.startswith(key.split("|", 1)[0] + "|")}
        write_store(store, {**known, key: asdict(found)})
    return found


def _made_codec(encoder: str, text: str) -> str:
    """`-encoders` names the codec after the description unless the encoder bears its name:
    "libx264 H.264 / AVC ... (codec h264)", but "ffv1  FFmpeg video codec #1"."""
    found = re.search(r"\(codec (\S+)\)$", text.strip())
    return found[1] if found else encoder


def store_path(name: str) -> Path | None:
    """A small JSON store of facts learnt from ffmpeg, in the user cache (`STYLEFARM_CACHE_DIR`
    moves it; the test suite points it at a temporary folder); None without a home directory."""
    env = os.environ.get("STYLEFARM_CACHE_DIR")
    if env:
        return Path(env).expanduser() / name
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("stylefarm")) / name
    except Exception:  # no home directory: ask the binary every time
        return None


def read_store(store: Path | None) -> dict[str, Any]:
    try:
        data = json.loads(store.read_text()) if store is not None else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_store(store: Path, data: dict[str, Any]) -> None:
    """Atomic: processes starting together (on one host or several sharing a home) each write a
    whole file of their own; the last one stays."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=store.parent, prefix=f".{store.name}.", suffix=".part")
    except OSError:  # a read-only cache costs one ffmpeg start per process, nothing else
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, store)
    except OSError:  # a full disk: leave no part file behind
        Path(tmp).unlink(missing_ok=True)


def showinfo_args() -> dict[str, Any]:
    """showinfo options: no plane checksums where the binary allows (they cost ~1 ms a 720p frame)."""
    found = facts(ffmpeg_exe())
    return {"checksum": 0} if found and found.showinfo_checksum else {}


def _known() -> Facts | None:
    """The facts of the ffmpeg in use; None without one (said where one is needed)."""
    try:
        return facts(ffmpeg_exe())
    except FfmpegMissing:
        return None


def _unknown(what: str, name: str, known: tuple[str, ...], listing: str) -> ValueError:
    import difflib

    near = difflib.get_close_matches(name, known, 3)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    return ValueError(f"the ffmpeg in use has no such {what}{hint} (`ffmpeg {listing}` lists them)")


def check_encoder(name: str) -> None:
    """A video codec the ffmpeg in use cannot encode is a workflow error (ValueError, for the
    option's validator), said before any work rather than as a failed video. No check without an
    ffmpeg or when its encoders are not known."""
    found = _known()
    if found is not None and found.encoders and name not in found.encoders:
        raise _unknown("video encoder", name, found.encoders, "-encoders")


def check_pix_fmt(name: str) -> None:
    """The same for a pixel format the ffmpeg in use cannot write."""
    found = _known()
    if found is not None and found.pix_fmts and name not in found.pix_fmts:
        raise _unknown("pixel format", name, found.pix_fmts, "-pix_fmts")


HARDWARE_ENCODERS = ("_nvenc", "_qsv", "_vaapi", "_amf", "_videotoolbox", "_v4l2m2m", "_mf", "_vulkan")


def check_encoder_opens(encoder: str, pix_fmt: str, args: dict[str, Any]) -> None:
    """Encoder settings the encoder refuses are a workflow error (ValueError): one generated frame
    through it into nothing (~30 ms), at a small size and, should that fail, at 1080p (DNxHD takes
    only broadcast sizes), so only what fails at both is refused. Hardware encoders are not tried:
    the machine reading the workflow may have no such device. No check without an ffmpeg."""
    if encoder.endswith(HARDWARE_ENCODERS):
        return
    try:
        ffmpeg_exe()
    except FfmpegMissing:
        return
    flat = [str(a) for key, value in args.items() for a in (f"-{key}", value)]
    for size in ("256x144", "1920x1080"):
        proc = run([*TAGGED, "-f", "lavfi", "-i", f"color=s={size}:r=24", "-frames:v", "1", "-c:v", encoder,
                    "-pix_fmt", pix_fmt, *flat, "-f", "null", "-"], timeout=60)
        if proc.returncode == 0:
            return
    cause = last_error(proc.stderr).split(" ... ")[0]  # the cause, not each part that stopped
    raise ValueError(f"{encoder} refuses these settings: {cause}")


def codec_of(encoder: str) -> str | None:
    """The codec an encoder writes (h264 for libx264 and h264_nvenc); None when not known."""
    found = _known()
    return found.codecs.get(encoder) if found is not None else None


def version() -> str | None:
    """First line of `ffmpeg -version` of the binary in use (None if there is none)."""
    try:
        found = facts(ffmpeg_exe())
    except FfmpegMissing:
        return None
    return found.version if found else None


def _check(path: str, origin: str) -> str:
    """The binary must exist and start; a wrong path gets a one-line how-to-fix."""
    if not Path(path).is_file() or facts(path) is None:
        raise FfmpegMissing(f"ffmpeg binary {path!r} (from {origin}) is missing or does not run; {INSTALL_HINT}")
    return path


def ffprobe_exe() -> str | None:
    """A system ffprobe, only when the system ffmpeg is preferred (the bundled build has none)."""
    if not prefer_system() or os.environ.get("STYLEFARM_FFMPEG"):
        return None
    return shutil.which("ffprobe")


def last_error(stderr: str) -> str:
    """ffmpeg's reason, one line. Tagged logs (`TAGGED`, `PACED`): its first [error] or
    [fatal] line, where it says the cause, and its last, where it says what failed, e.g. "x264
    [error]: invalid preset 'nosuch' ... Nothing was written into output file ..." (ffmpeg says
    the cause first, then each part that stopped; either line alone can mislead); untagged
    (`QUIET`, `ffmpeg -i` banners) or without an error line: the last line not tagged [info].
    The level tags and the `[name @ 0x...]` context prefixes are dropped."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [_NOISE.sub("", ln).strip() for ln in lines if _ERROR.search(ln)]
    if errors:
        return errors[0] if errors[0] == errors[-1] else f"{errors[0]} ... {errors[-1]}"
    return _NOISE.sub("", ([ln for ln in lines if "[info]" not in ln] or ["no message"])[-1]).strip()


_ERROR = re.compile(r"\[(error|fatal)\]")
_NOISE = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\] |\[(fatal|error|warning)\] ")


def run(args: list[str], timeout: float | None = None, binary: bool = False) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion with captured output (text unless `binary`; short jobs only)."""
    proc = subprocess.run([ffmpeg_exe(), *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    if not binary:
        proc.stdout = proc.stdout.decode("utf-8", "replace")
    return proc


class Pipe:
    """A long-running ffmpeg with stdin or stdout piped and stderr spooled to a temp file.

    Spooling stderr (rather than piping it) means nobody has to drain it: a chatty or failing
    ffmpeg can never block on a full stderr pipe while we block on stdout/stdin.
    """

    def __init__(self, argv: list[str], reading: bool | None):
        """`reading`: frames come out on stdout (True), go in on stdin (False), or neither (None:
        one ffmpeg that decodes and encodes, see `VideoSource.relay_items`)."""
        self._err = tempfile.NamedTemporaryFile(prefix="stylefarm-ffmpeg-", suffix=".log")
        pipes = {"stdout": subprocess.PIPE if reading else subprocess.DEVNULL,
                 "stdin": subprocess.PIPE if reading is False else subprocess.DEVNULL}
        self.proc = subprocess.Popen(argv, stderr=self._err, bufsize=1 << 20, **pipes)
        if reading is not None:
            _widen((self.proc.stdout if reading else self.proc.stdin).fileno())

    def stderr_lines(self):
        """A reader of ffmpeg's stderr as it is written: its own file offset (ffmpeg's is shared
        with our handle), so reading here never moves where ffmpeg writes."""
        return open(self._err.name, "rb")  # noqa: SIM115 - the caller closes it

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def wait(self, timeout: float | None = None) -> int:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:  # a dead encoder makes the final flush fail
                    pass
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        self._err.close()


def _widen(fd: int) -> None:
    """Best effort: other systems, or a lower `/proc/sys/fs/pipe-max-size`, keep the default."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, OSError):
        pass


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class ReadAhead:
    """`produce()` run in a thread, at most `depth` results ahead of the consumer (a bounded
    queue), until it returns None: the decoder keeps working while the chain computes, and frames
    never pile up. An exception in the thread is raised again to the consumer, where it would
    have been raised without the thread."""

    def __init__(self, produce: Callable[[], Any], depth: int, name: str = "stylefarm-decode"):
        self.produce, self.depth = produce, depth
        self.queue: queue.Queue = queue.Queue(depth)
        self.stopping = threading.Event()
        self.produced = 0  # results handed over so far (tests check how far ahead the thread runs)
        self.peak = 0  # most results ever waiting in the queue
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                value = self.produce()
                if not self._put(value) or value is None:
                    return
                self.produced += 1
        except BaseException as exc:  # handed to the consumer, which decides what it means
            self._put(_Failed(exc))

    def _put(self, value: Any) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(value, timeout=0.1)
            except queue.Full:
                continue
            self.peak = max(self.peak, self.queue.qsize())
            return True
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            value = self.queue.get()
            if value is None:
                return
            if isinstance(value, _Failed):
                raise value.exc
            yield value

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (call after ending what `produce` reads, e.g. killing the ffmpeg)."""
        self.stopping.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout)
