"""What a short job pays before and after its work: the ffmpeg facts learnt once per binary and
machine (not three ffmpeg starts per process), and no ffmpeg started that the job does not need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from video_fixtures import make_clip

from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.video import ffmpeg, probe
from stylefarm.workflow import read_yaml_file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A user cache of its own (platformdirs follows XDG_CACHE_HOME) and no facts remembered."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STYLEFARM_CACHE_DIR", raising=False)  # the suite's own cache folder
    ffmpeg._facts.cache_clear()
    yield tmp_path / "cache" / "stylefarm" / "ffmpeg.json"
    ffmpeg._facts.cache_clear()


def fake_ffmpeg(path: Path, version: str, runs: Path, rc: int = 0) -> Path:
    """A stand-in binary that counts its starts: the real one cannot say how often it ran."""
    path.write_text(f"#!/bin/sh\necho \"$@\" >> {runs}\necho 'ffmpeg version {version} Copyright' >&2\n"
                    f"echo '  checksum          <boolean>'\necho ' V....D libfake   Fake video (codec fake)'\n"
                    f"echo 'IO... yuvfake     3     12     8-8-8'\nexit {rc}\n")
    path.chmod(0o755)
    return path


FAKE_FACTS = {"version": "ffmpeg version fake-1 Copyright", "showinfo_checksum": True,
              "codecs": {"libfake": "fake"}, "pix_fmts": ["yuvfake"]}


def starts(runs: Path) -> int:
    """Times the facts were learnt: each is one `-h filter=showinfo` run (and `-encoders`, `-pix_fmts`)."""
    return runs.read_text().splitlines().count("-h filter=showinfo") if runs.exists() else 0


def test_facts_are_learnt_once_per_binary_and_kept_across_processes(cache, tmp_path):
    runs = tmp_path / "runs.txt"
    exe = fake_ffmpeg(tmp_path / "ffmpeg", "fake-1", runs)
    found = ffmpeg.facts(str(exe))
    assert found == ffmpeg.Facts("ffmpeg version fake-1 Copyright", True, {"libfake": "fake"},
                                 ("yuvfake",)) and starts(runs) == 1
    assert found.encoders == ("libfake",)
    assert runs.read_text().splitlines() == ["-h filter=showinfo", "-hide_banner -encoders", "-hide_banner -pix_fmts"]
    assert list(json.loads(cache.read_text()).values()) == [FAKE_FACTS]
    ffmpeg._facts.cache_clear()  # what a new process sees: only the file
    assert ffmpeg.facts(str(exe)) == found and starts(runs) == 1
    fake_ffmpeg(exe, "fake-2", runs)  # replaced in place: another size and mtime
    os.utime(exe, ns=(1, 1))
    assert ffmpeg.facts(str(exe)).version == "ffmpeg version fake-2 Copyright" and starts(runs) == 2
    assert len(json.loads(cache.read_text())) == 1  # the old binary's entry is dropped


def test_facts_an_older_stylefarm_kept_are_learnt_again(cache, tmp_path):
    runs = tmp_path / "runs.txt"
    exe = fake_ffmpeg(tmp_path / "ffmpeg", "fake-1", runs)
    ffmpeg.facts(str(exe))
    key = next(iter(json.loads(cache.read_text())))
    cache.write_text(json.dumps({key: {"version": "v", "showinfo_checksum": True}}))  # before encoders were kept
    ffmpeg._facts.cache_clear()
    assert ffmpeg.facts(str(exe)).encoders == ("libfake",) and starts(runs) == 2
    cache.write_text(json.dumps({key: {"version": "v", "showinfo_checksum": True, "encoders": ["libfake"]}}))
    ffmpeg._facts.cache_clear()  # before codecs and pixel formats were kept
    assert ffmpeg.facts(str(exe)).pix_fmts == ("yuvfake",) and starts(runs) == 3


def test_a_damaged_cache_file_is_rewritten_and_a_read_only_one_costs_a_start(cache, tmp_path):
    runs = tmp_path / "runs.txt"
    exe = fake_ffmpeg(tmp_path / "ffmpeg", "fake-1", runs)
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert ffmpeg.facts(str(exe)).showinfo_checksum and starts(runs) == 1
    assert len(json.loads(cache.read_text())) == 1
    cache.write_text("{}")
    cache.parent.chmod(0o500)
    try:
        ffmpeg._facts.cache_clear()
        assert ffmpeg.facts(str(exe)).version.endswith("fake-1 Copyright") and starts(runs) == 2
    finally:
        cache.parent.chmod(0o700)


def test_a_binary_that_fails_is_not_remembered_and_gets_the_one_line_error(cache, tmp_path, monkeypatch):
    runs = tmp_path / "runs.txt"
    exe = fake_ffmpeg(tmp_path / "ffmpeg", "broken", runs, rc=1)
    assert ffmpeg.facts(str(exe)) is None and not cache.exists()
    monkeypatch.setenv("STYLEFARM_FFMPEG", str(exe))
    with pytest.raises(ffmpeg.FfmpegMissing, match="does not run; install it with"):
        ffmpeg.ffmpeg_exe()
    assert ffmpeg.version() is None  # the report says nothing rather than failing
    assert ffmpeg.facts(str(tmp_path / "missing")) is None


def test_the_bundled_binary_is_imageio_ffmpeg_s_own():
    import imageio_ffmpeg

    assert ffmpeg._bundled() == imageio_ffmpeg.get_ffmpeg_exe()
    real = subprocess.run([ffmpeg.ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    assert ffmpeg.version() == real.splitlines()[0] and ffmpeg.showinfo_args() == {"checksum": 0}


def test_a_relayed_job_starts_only_the_ffmpegs_it_needs(cache, tmp_path, monkeypatch):
    """Warm cache: two probes of the input, the one relaying ffmpeg, two checks of the output;
    no -version or -h runs. The report still names the ffmpeg."""
    clip = make_clip(tmp_path / "in.mp4", frames=6, size="64x48")
    ffmpeg.facts(ffmpeg.ffmpeg_exe())  # learnt once
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: []\n"
                  "output: {dir: out, images: false, video: {path: o.mp4}}\n")
    launched: list[list[str]] = []
    real_init = subprocess.Popen.__init__

    def spy(self, args, *a, **kw):  # records what starts; the processes are the real ones
        launched.append([str(x) for x in args])
        real_init(self, args, *a, **kw)

    ffmpeg._facts.cache_clear()
    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    report = Run(build_plan(read_yaml_file(wf), tmp_path), progress=False).execute()
    monkeypatch.undo()
    assert report["relay"] and report["counts"]["done"] == 6
    flags = [a[1:] for a in launched if a[0] == ffmpeg.ffmpeg_exe()]
    assert not [f for f in flags if "-version" in f or "-h" in f], flags
    assert len(flags) == 5, "\n".join(" ".join(f[:8]) for f in flags)
    real = subprocess.run([ffmpeg.ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    assert report["provenance"]["ffmpeg"] == real.splitlines()[0]


def test_a_second_job_on_a_settled_input_starts_no_probe(cache, tmp_path):
    clip = settled(make_clip(tmp_path / "in.mp4", frames=6, size="64x48"))
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: []\n"
                  "output: {dir: out, images: false, video: {path: o.mp4}}\n")
    launched: list[str] = []
    real_init = subprocess.Popen.__init__

    def spy(self, args, *a, **kw):
        launched.append(" ".join(str(x) for x in args))
        real_init(self, args, *a, **kw)

    for _ in range(2):
        probe._SEEN.clear()  # each job a new process
        launched.clear()
        with pytest.MonkeyPatch.context() as patch:  # its own: undoing must leave the cache fixture's
            patch.setattr(subprocess.Popen, "__init__", spy)
            report = Run(build_plan(read_yaml_file(wf), tmp_path), force=True, progress=False).execute()
        assert report["counts"]["done"] == 6
    of_input = [cmd for cmd in launched if f"-i {clip}" in cmd and "-filter_complex" not in cmd]
    assert not of_input, of_input
    assert len(launched) == 3, launched  # the relay and the output check's two


def settled(path: Path, seconds_ago: float = 3600) -> Path:
    """As an input a farm reads: written a while ago (mtime back; its ctime is now)."""
    import time

    os.utime(path, (time.time() - seconds_ago, time.time() - seconds_ago))
    return path


@pytest.fixture
def ffmpeg_runs(monkeypatch):
    """How many ffmpegs the probe starts (each is the real one)."""
    runs: list[list[str]] = []
    real = ffmpeg.run

    def counting(args, *a, **kw):
        runs.append(args)
        return real(args, *a, **kw)

    monkeypatch.setattr(ffmpeg, "run", counting)
    probe._SEEN.clear()  # a new process: nothing probed in memory
    yield runs
    probe._SEEN.clear()


def test_an_input_probed_once_is_read_from_the_store_by_the_next_process(cache, tmp_path, ffmpeg_runs):
    clip = settled(make_clip(tmp_path / "in.mp4", frames=6, size="64x48"))
    first = probe.probe(clip)
    assert len(ffmpeg_runs) == 2 and (cache.parent / "probe.json").is_file()
    probe._SEEN.clear()
    again = probe.probe(clip)
    assert again == first and isinstance(again.fps, Fraction) and len(ffmpeg_runs) == 2, "read from the store"
    settled(clip, seconds_ago=7200)  # touched (a copy that kept its size): probed again, one entry kept
    probe._SEEN.clear()
    assert probe.probe(clip) == first and len(ffmpeg_runs) == 4
    assert len(json.loads((cache.parent / "probe.json").read_text())) == 1


def test_a_file_still_being_written_or_a_damaged_store_is_probed_again(cache, tmp_path, ffmpeg_runs):
    fresh = make_clip(tmp_path / "fresh.mp4", frames=4, size="64x48")
    probe.probe(fresh)
    assert not (cache.parent / "probe.json").exists(), "a file changed seconds ago may still grow"
    clip = settled(make_clip(tmp_path / "in.mp4", frames=4, size="64x48"))
    store = cache.parent / "probe.json"
    store.write_text("{not json")
    assert probe.probe(clip).frames == 4 and len(json.loads(store.read_text())) == 1
    key = next(iter(json.loads(store.read_text())))
    store.write_text(json.dumps({key: {"width": "?"}}))  # another version's layout
    probe._SEEN.clear()
    runs = len(ffmpeg_runs)
    assert probe.probe(clip).frames == 4 and len(ffmpeg_runs) == runs + 2


def test_processes_starting_together_leave_one_whole_cache_file(cache, tmp_path):
    import sys

    exe = fake_ffmpeg(tmp_path / "ffmpeg", "fake-1", tmp_path / "runs.txt")
    code = f"from stylefarm.video import ffmpeg; assert ffmpeg.facts({str(exe)!r}).showinfo_checksum"
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ}) for _ in range(6)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert list(json.loads(cache.read_text()).values()) == [FAKE_FACTS]
    assert [p.name for p in cache.parent.iterdir()] == ["ffmpeg.json"], "no part files left"


IDLE_CPU = """
import resource, sys, time
if sys.argv[1] == "stylefarm":
    import stylefarm  # noqa: F401
import numpy  # noqa: F401
before = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(0.3)  # this thread sleeps: CPU time spent now is another thread's
after = resource.getrusage(resource.RUSAGE_SELF)
print(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
"""


def _idle_cpu(mode: str) -> float:
    threads = {"OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS",
               "OPENBLAS_DEFAULT_NUM_THREADS"}  # a launcher or an earlier test may have set these (the full suite did)
    env = {k: v for k, v in os.environ.items() if k not in threads}
    out = subprocess.run([sys.executable, "-c", IDLE_CPU, mode], capture_output=True, text=True, env=env,
                         check=True).stdout
    return float(out)


def test_numpy_s_blas_threads_do_not_spin_after_stylefarm_is_imported():
    """OpenBLAS's idle threads spin ~0.1 s after numpy's import; importing stylefarm first makes
    them sleep at once (OPENBLAS_THREAD_TIMEOUT), which gave back 0.05 s CPU per job on 2 cores."""
    spinning = _idle_cpu("numpy")
    if spinning < 0.03:
        pytest.skip(f"numpy's BLAS does not spin here ({spinning:.3f} s idle CPU: one core, or not OpenBLAS)")
    assert _idle_cpu("stylefarm") < spinning / 3


def test_a_blas_thread_setting_of_the_user_is_kept():
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "12"}
    out = subprocess.run([sys.executable, "-c", "import os, stylefarm; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "12"
