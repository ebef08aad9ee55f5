"""The compliance log: every change of the limit in force and every excursion above it
(start, duration, peak, cause), one JSON line each, in a bounded pair of files on flash.
Pure: files only, no machine, no network."""

import json
import os

from micropython import const

_MAX_LINES = const(128)      # per file; the log keeps two files, so at most 2 x this


class Log:
    """Appends entries to `path`; when it holds max_lines, it becomes path + ".1" (the
    older one is dropped) and a new file starts. publish(line), if given, sees each line."""

    def __init__(self, path="compliance.log", max_lines=_MAX_LINES, publish=None):
        self.path = path
        self.max_lines = max_lines
        self.publish = publish
        self.lines = 0
        self.written = 0
        self.failed = 0
        try:
            with open(path) as f:
                for _ in f:
                    self.lines += 1
        except OSError:
            pass

    def add(self, entry):
        line = json.dumps(entry)
        if self.lines >= self.max_lines:
            try:
                os.remove(self.path + ".1")
            except OSError:
                pass
            try:
                os.rename(self.path, self.path + ".1")
            except OSError:
                pass
            self.lines = 0
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
            self.lines += 1
            self.written += 1
        except OSError:
            self.failed += 1     # flash full or gone: control goes on, the count says so
        if self.publish is not None:
            self.publish(line)

    def read(self):
        """Every kept line, oldest first (a generator: nothing is held in RAM)."""
        for p in (self.path + ".1", self.path):
            try:
                with open(p) as f:
                    for line in f:
                        line = line.strip()
                        if line:
                            yield line
            except OSError:
                pass


class Monitor:
    """Watches measurement and limit once per control period. An excursion starts with the
    first sample above the limit in force and ends with the first one at or under it (or an
    invalid one); it is logged as {"k": "excursion", "t", "dur_s", "peak_w", "limit_w",
    "cause"}: cause is the source that set the limit, with "/overload" when the controller
    had nothing left to shed. A change of the limit is {"k": "limit", "t", "limit_w",
    "source"}. when() gives t: unix seconds, or "u<uptime s>" before the wall clock is
    known; it is called only to log, so a steady sample allocates nothing."""

    def __init__(self, log, when):
        self.log = log
        self._when = when
        self._limit_w = -1       # the last limit logged (-1: none yet; None: no limit)
        self._start = None       # the excursion in progress: its t, mono s, peak, limit, cause
        self._start_m = 0
        self._peak_w = 0
        self._ex_limit_w = 0
        self._cause = None
        self.excursions = 0
        self.excursion_s = 0
        self.changes = 0

    def sample(self, mono_s, valid, total_w, limit_w, source, overload):
        """limit_w: None without a limit; source: what sets it (a limits.Limits source)."""
        if limit_w != self._limit_w:
            self._limit_w = limit_w
            self.changes += 1
            self.log.add({"k": "limit", "t": self._when(), "limit_w": limit_w,
                          "source": source})
        over = valid and limit_w is not None and total_w > limit_w
        if over:
            if self._start is None:
                self._start = self._when()
                self._start_m = mono_s
                self._peak_w = total_w
                self._ex_limit_w = limit_w
                self._cause = source
            elif total_w > self._peak_w:
                self._peak_w = total_w
            if overload and not self._cause.endswith("/overload"):
                self._cause += "/overload"
        elif self._start is not None:
            self.end(mono_s)

    def end(self, mono_s):
        dur = mono_s - self._start_m
        if dur < 1:
            dur = 1
        self.excursions += 1
        self.excursion_s += dur
        self.log.add({"k": "excursion", "t": self._start, "dur_s": dur,
                      "peak_w": self._peak_w, "limit_w": self._ex_limit_w,
                      "cause": self._cause})
        self._start = None
