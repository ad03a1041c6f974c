"""Progress: a tqdm bar on a terminal, periodic log lines otherwise (farm logs, CI)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("stylefarm.progress")


class Progress:
    def __init__(self, total: int | None, enabled: bool = True, interval: float = 10.0):
        self.total, self.done, self.failed, self.skipped = total, 0, 0, 0
        self.interval, self._last = interval, time.monotonic()
        self._start = self._last
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", dynamic_ncols=True, file=sys.stderr)

    def update(self, *, failed: bool = False, skipped: bool = False) -> None:
        self.done += 1
        self.failed += failed
        self.skipped += skipped
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, skipped=self.skipped, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.done == self.total:
            self._last = now
            rate = self.done / max(now - self._start, 1e-9)
            total = f"/{self.total}" if self.total else ""
            log.info("progress %d%s items (%d failed, %d skipped) %.2f items/s",
                     self.done, total, self.failed, self.skipped, rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
