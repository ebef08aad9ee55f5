"""The compliance log: every change of the limit in force (watts and amps per leg), every
excursion above it (start, duration, peaks, cause), every period of invalid measurement and
every stretch of failed flash writes, one JSON line each, in a bounded pair of files on flash.
Pure: files only, no machine, no network."""

import json
import os

from micropython import const

from limits import NO_LIMIT

_MAX_LINES = const(128)      # per file; the log keeps two files, so at most 2 x this


class Log:
    """Appends entries to `path`; when it holds max_lines, it becomes path + ".1" (the
    older one is dropped) and a new file starts. publish(line), if given, sees each line.
    A write that fails (flash full or gone) is counted in `failed`; the first of a run of
    failures is published as {"k": "write_failed", "t", "lost": 1} at once, and the next
    write that succeeds is preceded by {"k": "write_failed", "t", "lost": N} in the file, so
    the log itself says what it is missing."""

    def __init__(self, path="compliance.log", max_lines=_MAX_LINES, publish=None):
        self.path = path
        self.max_lines = max_lines
        self.publish = publish
        self.lines = 0
        self.written = 0
        self.failed = 0
        self.lost = 0            # entries lost since the last write that succeeded
        try:
            with open(path) as f:
                for _ in f:
                    self.lines += 1
        except OSError:
            pass

    def add(self, entry):
        t = entry.get("t")
        if self.lost and self._write(json.dumps({"k": "write_failed", "t": t,
                                                 "lost": self.lost})):
            self.lost = 0
        line = json.dumps(entry)
        if not self._write(line):
            self.failed += 1     # control goes on; the count and the note say so
            self.lost += 1
            if self.lost == 1 and self.publish is not None:
                self.publish(json.dumps({"k": "write_failed", "t": t, "lost": 1}))
        if self.publish is not None:
            self.publish(line)

    def _write(self, line):
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
        except OSError:
            return False
        self.lines += 1
        self.written += 1
        return True

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


def _lim(v):
    return None if v >= NO_LIMIT else v


class Monitor:
    """Watches measurement and limit once per control period, against the limit in force
    (limits.Limits.in_force: not the controller's planning limit, lower ahead of a known
    step). when() gives t: unix seconds, or "u<uptime s>" before the wall clock is known; it
    is called only to log, so a steady sample allocates nothing. Entries:

    {"k": "limit", "t", "limit_w", "source"[, "limit_ma", "source_a"]}: a change of the limit
        in force (W; mA per leg where amps are limited, and the source that sets them).
    {"k": "excursion", "t", "dur_s", "peak_w", "limit_w"[, "peak_ma", "limit_ma"], "cause"}:
        from the first sample above the limit (total W, or either leg's mA) to the first at
        or under it (or invalid). cause: the source of the limit exceeded, then what happened:
        "/known step" it began as the limit dropped at a boundary known in advance (the
        controller turns loads down ahead of those: this should not happen);
        "/unannounced" it began as the limit dropped without notice (an emergency, a remote
        limit): the loads took their response time to follow;
        "/overload" the controller had nothing left to shed (the house alone was over);
        "/response" none of those: the house stepped up while controlled loads ran near the
        limit, they were turned down at once and it lasted their response time (an EV's 5 s).
        (Built without limits, a Monitor cannot tell a known drop from a cut: "/step".)
    {"k": "invalid", "t", "dur_s"}: a period of invalid measurement (nothing can be judged)."""

    def __init__(self, log, when, limits=None, legs=None):
        # limits: the limits.Limits (without it, the limit the caller gives is judged, in W
        # only); legs: the meter's leg mA array, read in place each sample (None: W only).
        self.log = log
        self._when = when
        self.limits = limits
        self.legs = legs
        self._limit_w = -1       # the last limit logged (-1: none yet; NO_LIMIT: no limit)
        self._limit_ma = -1
        self._cuts = 0           # limits.cuts at the last sample
        self._drop = None        # how the last sample's change came in, if it was a drop
        self._src_w = self._src_a = None      # the sources of the limit the last sample saw
        self._start = None       # the excursion in progress: its t, mono s, peaks, limit, cause
        self._start_m = 0
        self._peak_w = 0
        self._peak_ma = 0
        self._ex_limit_w = 0
        self._ex_limit_ma = 0
        self._cause = None
        self._step = None        # "known step" or "unannounced": how it began, or None
        self._overload = False
        self._bad = None         # the invalid period in progress: its t
        self._bad_m = 0
        self.excursions = 0
        self.excursion_s = 0
        self.changes = 0
        self.invalid = 0
        self.invalid_s = 0

    def sample(self, mono_s, valid, total_w, limit_w, source, overload):
        """limit_w, source: the controller's limit and what set it, judged only without
        self.limits (None: no limit); overload: the controller had nothing left to shed."""
        limits = self.limits
        if limits is not None:
            limits.in_force()
            lw = limits.limit_w
            lma = limits.limit_ma
            src_w = limits.source_w
            cuts = limits.cuts
        else:
            lw = NO_LIMIT if limit_w is None else limit_w
            lma = NO_LIMIT
            src_w = source
            cuts = self._cuts
        # The measurement is of the period that just ended: judged against the limit in
        # force through it, the one the last sample saw (a change at this sample's tick
        # counts from the next measurement on), and how that limit came in.
        src_a = None if limits is None else limits.source_a
        jw = self._limit_w
        jma = self._limit_ma
        jsw = self._src_w
        jsa = self._src_a
        step = self._drop
        if jw < 0:
            jw = lw
            jma = lma
            jsw = src_w
            jsa = src_a
        self._src_w = src_w
        self._src_a = src_a
        self._drop = None
        if lw != self._limit_w or lma != self._limit_ma:
            if 0 <= self._limit_w and (lw < self._limit_w or lma < self._limit_ma):
                # Lower: known in advance unless something cut it at once since the last
                # sample (limits.cuts; without limits nothing says which: "step").
                self._drop = "step" if limits is None else \
                    "unannounced" if cuts != self._cuts else "known step"
            self._limit_w = lw
            self._limit_ma = lma
            self.changes += 1
            e = {"k": "limit", "t": self._when(), "limit_w": _lim(lw), "source": src_w}
            if lma < NO_LIMIT:
                e["limit_ma"] = lma
                e["source_a"] = src_a
            self.log.add(e)
        self._cuts = cuts
        if not valid:
            if self._start is not None:
                self.end(mono_s)
            if self._bad is None:
                self._bad = self._when()
                self._bad_m = mono_s
            return
        if self._bad is not None:
            self._end_bad(mono_s)
        ma = 0
        legs = self.legs
        if legs is not None:
            ma = legs[0] if legs[0] > legs[1] else legs[1]
        over_w = total_w > jw
        if over_w or ma > jma:
            if self._start is None:
                self._start = self._when()
                self._start_m = mono_s
                self._peak_w = total_w
                self._peak_ma = ma
                self._ex_limit_w = jw
                self._ex_limit_ma = jma
                self._cause = jsw if over_w else jsa
                self._step = step
                self._overload = False
            else:
                if total_w > self._peak_w:
                    self._peak_w = total_w
                if ma > self._peak_ma:
                    self._peak_ma = ma
            if overload:
                self._overload = True
        elif self._start is not None:
            self.end(mono_s)

    def _end_bad(self, mono_s):
        dur = mono_s - self._bad_m
        if dur < 1:
            dur = 1
        self.invalid += 1
        self.invalid_s += dur
        self.log.add({"k": "invalid", "t": self._bad, "dur_s": dur})
        self._bad = None

    def end(self, mono_s):
        dur = mono_s - self._start_m
        if dur < 1:
            dur = 1
        self.excursions += 1
        self.excursion_s += dur
        cause = self._cause
        if self._step is not None:
            cause += "/" + self._step
        if self._overload:
            cause += "/overload"
        elif self._step is None:
            cause += "/response"
        e = {"k": "excursion", "t": self._start, "dur_s": dur, "peak_w": self._peak_w,
             "limit_w": _lim(self._ex_limit_w)}
        if self._ex_limit_ma < NO_LIMIT:
            e["peak_ma"] = self._peak_ma
            e["limit_ma"] = self._ex_limit_ma
        e["cause"] = cause
        self.log.add(e)
        self._start = None
