"""Demand-window budget: a limit source that holds each clock-aligned window's average import
(15 or 60 minutes) at or under a budget, as capacity tariffs bill it (Belgium: the month's
highest quarter-hour). It can only tighten the panel's limit (Limits: the strictest wins)."""
# The control: allowed W = (budget x window - energy so far this window) / seconds left. Energy
# is kept in integer watt-seconds plus a W*ms remainder, so 100 kW for 60 minutes (3.6e8 W*s)
# stays a small int on the ESP32 (2**30); steps are timed with ticks_diff across the wrap, and
# wall time is kept in seconds since 2000 (unix seconds are past 2**30, a heap int there). The
# windows follow the wall clock (SNTP via grid, or the RTC): without one the source clears its
# limit and says so, and the plain limit applies.

import asyncio
import json
import time

from micropython import const

SOURCE = "demand"              # its name among the Limits sources
WINDOWS_MIN = (15, 60)
_MAX_W = const(200000)         # an import reading above this is a fault, counted as this
_MAX_STEP_MS = const(5000)     # a longer gap between steps (a stall) counts as this long
_LIMIT_CAP_W = const(500000)   # Limits.set's own bound
_PAUSE_MS = const(60000)       # after a cut the limit stays down this long: no chatter
_SAVE_EVERY_S = const(60)      # the state on flash is at most this old after a power cut
_Y2K = const(946684800)        # unix seconds at 2000-01-01
_SLICE_MS = const(10000)       # the save task looks this often


class DemandWindow:
    """limits: the Limits it adds its source to; clock: ticks; wall(): unix seconds or None.
    follow_peak: the budget rises to this month's highest window so far (it is billed
    anyway), never above it. path: where the window's state survives a reboot (None: RAM)."""
    source = SOURCE                # its key in the status snapshot (snapshot.py)

    def __init__(self, limits, clock, wall, window_min, budget_w, follow_peak=False, path=None,
                 log=print):
        if window_min not in WINDOWS_MIN:
            raise ValueError("error: demand_window_min must be one of %s, got %r"
                             % (WINDOWS_MIN, window_min))
        if not isinstance(budget_w, int) or isinstance(budget_w, bool) or \
                not 100 <= budget_w <= _MAX_W:
            raise ValueError("error: demand_budget_w must be an int in 100..%d W, got %r"
                             % (_MAX_W, budget_w))
        self.limits = limits
        self.clock = clock
        self.wall = wall
        self.window_s = window_min * 60
        self.budget_w = budget_w
        self.follow_peak = follow_peak
        self.path = path
        self.log = log
        self.status = "no time"    # "ok", or why the source is off
        self.start_s = None        # wall second the current window started
        self.energy_ws = 0         # import this window, W*s ...
        self._rem_wms = 0          # ... plus what is under one W*s, in W*ms
        self.month = None          # (year, month) of the current window
        self.month_peak_w = 0      # highest whole-window average this month
        self.last_window_w = None  # the average of the window that ended last
        self.allowed_w = None      # the limit it set, None when it sets none
        self.import_w = 0
        self.wall_s = None         # seconds since 2000 at the last step
        self._last_ms = None
        self._cut_ms = None
        self._saved_s = None
        self._gap_from_s = None    # after a reboot: when the saved state was written
        self._load()

    # --- the control step: called by the control task each period --------------------
    def step(self, import_w):
        now = self.clock.ticks_ms()
        wall_s = self.wall()
        last = self._last_ms
        self._last_ms = now
        if wall_s is None:
            if self.status != "no time":
                self.log("demand: no valid time: window budget off, the plain limit applies")
            self._off("no time")
            return
        wall_s = int(wall_s) - _Y2K
        self.wall_s = wall_s
        start = wall_s - wall_s % self.window_s
        if start != self.start_s:
            self._roll(start)
            last = None                        # the new window counts from now
        w = import_w if import_w > 0 else 0    # import only: export is not billed as demand
        if w > _MAX_W:
            w = _MAX_W
        self.import_w = w
        gap_from = self._gap_from_s
        if gap_from is not None:
            # Rebooted inside the window saved: the seconds since that save are charged at
            # the import the first reading shows (what runs before any load is restored).
            self._gap_from_s = None
            if start <= gap_from < wall_s:
                self.energy_ws += w * (wall_s - gap_from)
        if last is not None:
            dt = self.clock.ticks_diff(now, last)
            if dt > 0:
                e = w * (dt if dt < _MAX_STEP_MS else _MAX_STEP_MS) + self._rem_wms
                self.energy_ws += e // 1000
                self._rem_wms = e % 1000
        left_s = start + self.window_s - wall_s
        allowed = (self.budget_now_w() * self.window_s - self.energy_ws) // left_s
        if allowed < 0:
            allowed = 0
        elif allowed > _LIMIT_CAP_W:
            allowed = _LIMIT_CAP_W
        prev = self.allowed_w
        if prev is not None and allowed > prev:
            # Up only once the last cut is _PAUSE_MS old, and by 1 % or more: the loads it
            # holds back do not chatter on each second's rounding.
            if self.clock.ticks_diff(now, self._cut_ms) < _PAUSE_MS or allowed - prev < prev // 100:
                allowed = prev
        else:
            self._cut_ms = now                 # a cut, or the first limit set
        self.status = "ok"
        if allowed != prev:
            self.allowed_w = allowed
            self.limits.set(SOURCE, w=allowed)
        if self._saved_s is None or wall_s - self._saved_s >= _SAVE_EVERY_S:
            self._saved_s = wall_s
            self.save_due = True

    def budget_now_w(self):
        """The budget this window plans to: follow_peak raises it to the month's peak."""
        b = self.budget_w
        if self.follow_peak and self.month_peak_w > b:
            b = self.month_peak_w
        return b

    def window_energy_wh(self):
        return self.energy_ws // 3600

    def headroom_w(self):
        """What import may still rise by this window, or None without a window."""
        return None if self.allowed_w is None else self.allowed_w - self.import_w

    def report(self):
        """The window for the status snapshot (MQTT state, the page's API): docs/mqtt.md."""
        ok = self.status == "ok"
        return {"status": self.status, "window_min": self.window_s // 60,
                "budget_w": self.budget_now_w(), "window_wh": self.energy_ws // 3600 if ok else None,
                "allowed_w": self.allowed_w, "headroom_w": self.headroom_w(),
                "last_w": self.last_window_w, "peak_w": self.month_peak_w}

    def _roll(self, start):
        if self.start_s is not None and start - self.start_s == self.window_s:
            # A whole window just ended (after a reboot inside it too: its energy was kept).
            avg = self.energy_ws // self.window_s
            self.last_window_w = avg
            if avg > self.month_peak_w:
                self.month_peak_w = avg
        month = time.gmtime(start + _GMTIME_FROM_Y2K)[:2]
        if month != self.month:                # the bill's month turned: a new peak
            self.month = month
            self.month_peak_w = 0
        self.start_s = start
        self.energy_ws = 0
        self._rem_wms = 0
        self.save_due = True

    def _off(self, why):
        self.status = why
        if self.allowed_w is not None:
            self.allowed_w = None
            self.limits.clear(SOURCE)

    # --- the state on flash ------------------------------------------------------------
    save_due = False

    def _load(self):
        if self.path is None:
            return
        import atomicfile            # read() also finds the old file a cut save set aside
        try:
            s = json.loads(atomicfile.read(self.path))
            start, energy, month, peak = s["start_s"], s["energy_ws"], s["month"], s["month_peak_w"]
            saved = s["saved_s"]
            for v in (start, energy, peak, saved):
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError("not a count")
            if not (isinstance(month, list) and len(month) == 2 and
                    all(isinstance(v, int) for v in month)):
                raise ValueError("bad month")
        except OSError:
            return                            # first boot with the budget: a fresh window
        except (ValueError, KeyError, TypeError) as e:
            self.log("demand: %s unreadable (%s): starting a fresh window" % (self.path, e))
            return
        self.start_s = start
        self.energy_ws = energy
        self.month = tuple(month)
        self.month_peak_w = peak
        self._gap_from_s = saved

    def save(self):
        """Writes the window's state (atomically); a failing flash keeps it in RAM."""
        self.save_due = False
        if self.path is None or self.start_s is None:
            return
        import atomicfile
        try:
            atomicfile.write(self.path, json.dumps({
                "start_s": self.start_s, "energy_ws": self.energy_ws, "saved_s": self.wall_s,
                "month": list(self.month), "month_peak_w": self.month_peak_w}))
        except OSError as e:
            self.log("demand: could not save %s: %s" % (self.path, e))

    async def run(self):
        """The save task: the control step only marks a save due, so it never writes."""
        while True:
            if self.save_due:
                self.save()
            await asyncio.sleep_ms(_SLICE_MS)


# time.gmtime counts from 2000 on the ESP32 and from 1970 on the unix port (a heap int there,
# once a window: the host only).
_GMTIME_FROM_Y2K = 0 if time.gmtime(0)[0] == 2000 else _Y2K
