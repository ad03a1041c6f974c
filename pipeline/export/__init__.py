"""`stylefarm export FORMAT`: jobs that render-farm managers submit as they are (see docs/farms.md)."""

from __future__ import annotations

from pathlib import Path

from .job import FarmJob, build_job

FORMATS = ("openjd", "deadline", "opencue")


def write(fmt: str, job: FarmJob, out_dir: Path, **options) -> list[Path]:
    """Write `job` in format `fmt` into `out_dir`; returns the files written."""
    if fmt == "openjd":
        from .openjd import write as write_openjd

        return write_openjd(job, out_dir, chunking=options.get("chunking", True))
    if fmt == "deadline":
        from .deadline import write as write_deadline

        return write_deadline(job, out_dir, group=options.get("group"), pool=options.get("pool"))
    if fmt == "opencue":
        from .opencue import write as write_opencue

        return write_opencue(job, out_dir, show=options.get("show"), shot=options.get("shot"))
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "FarmJob", "build_job", "write"]
