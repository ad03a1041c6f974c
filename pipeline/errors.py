"""Exceptions that map to the CLI's exit codes.

The CLI prints `str(error)` as one line; tracebacks only with `--debug`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_FATAL = 1  # unexpected error, environment problem (unwritable output dir, missing binary)
EXIT_INVALID = 2  # the workflow or the command line is wrong; nothing was run
EXIT_PARTIAL = 3  # the run finished but some items failed (listed in the report)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C); SIGTERM gives 143: 128 + the signal number, as shells do


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """An exception as one line (its message's first line; the type name when it has none)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}" if with_type else line


def defined_at(obj: object) -> str:
    """`file:line` of a class or function, for messages that point at the plugin's code."""
    import inspect

    try:
        target = inspect.unwrap(obj)
        code = getattr(target, "__code__", None)
        if code is not None:
            return f"{code.co_filename}:{code.co_firstlineno}"
        return f"{inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]}"
    except (TypeError, OSError):
        return ""


def raised_outside_host(exc: BaseException, prefer: str = "") -> str:
    """`file:line` where `exc` was raised outside the host package: the innermost frame in the file
    `prefer` (the plugin's module) when there is one, else the innermost outside the host (a library
    the plugin called); '' when every frame is the host's own."""
    import os
    import traceback

    host = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not os.path.abspath(f.filename).startswith(host)]
    frames = [f for f in frames if f.filename == prefer] or frames
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class StylefarmError(Exception):
    """Base class: a problem we can explain in one line."""

    exit_code = EXIT_FATAL


class WorkflowError(StylefarmError):
    """The workflow file (or an override) is invalid. Message names file, line and field."""

    exit_code = EXIT_INVALID


class PluginError(StylefarmError):
    """A plugin could not be loaded or conflicts with another one."""

    exit_code = EXIT_INVALID


class InputError(StylefarmError):
    """An input could not be found or read."""

    exit_code = EXIT_INVALID


class OutputError(StylefarmError):
    """The output location is unusable (unwritable, escapes the output dir)."""

    exit_code = EXIT_FATAL


class WeightsError(StylefarmError):
    """A weights file is missing, corrupt or has the wrong hash. Message says what to do."""

    exit_code = EXIT_FATAL


class ItemError(StylefarmError):
    """One item failed (bad file, poisoned frame); the run goes on and reports it."""


class DeviceError(StylefarmError, RuntimeError):
    """The device asked for is not there (`device: cuda` where torch sees no GPU)."""


class ClusterError(StylefarmError):
    """A Ray or Dask cluster cannot be reached or joined."""


def reachable(address: str, timeout: float, what: str) -> None:
    """Fail in `timeout` seconds with one line when nothing answers at host:port (a cluster client
    would otherwise retry for minutes)."""
    import socket

    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port (e.g. Ray's `auto`): the client says what is wrong itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the {what} at {address} within {timeout:g} s "
                           f"({exc.strerror or type(exc).__name__}); check --address / execution.address, "
                           f"or leave it out to start a local cluster") from None


class Cancelled(BaseException):
    """SIGTERM or SIGINT (a farm cancelling the task, Ctrl-C): stop now, keep finished work.

    A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.signal = signal.Signals(signum).name
        super().__init__(f"cancelled by {self.signal}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_HELD: list = [0, None]  # depth of `uninterrupted()` sections, signal that arrived inside one


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A signal arriving inside waits for the end of the section (e.g. an item's files, its
    manifest line and its count in the report): what is on disk and what is recorded agree."""
    _HELD[0] += 1
    try:
        yield
    finally:
        _HELD[0] -= 1
        if not _HELD[0] and _HELD[1] is not None:
            signum, _HELD[1] = _HELD[1], None
            raise Cancelled(signum)


def cancel_on_signals() -> None:
    """Turn SIGTERM and SIGINT into `Cancelled` in the main thread (once: a second signal during
    the clean-up is ignored so the report and the temp-file clean-up can finish)."""
    import signal

    def handler(signum, frame):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if _HELD[0]:  # inside `uninterrupted()`: raised when the section ends
            _HELD[1] = signum
            return
        raise Cancelled(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
