"""Runs the firmware's tasks, restarts one that crashes, and alone feeds the watchdog:
only while the sampler's and the controller's heartbeats are fresh. Repeated crashes of
critical tasks force every output safe and stop the feed, so the board resets; a non-critical
task (network, reporting) is restarted with backoff however often it fails."""

import asyncio


def task(obj, reset=None):
    """A `make` for Supervised that hands back the same task object, calling reset() first
    (an object that must start clean after a crash)."""
    def make():
        if reset is not None:
            reset()
        return obj
    return make


class Supervised:
    """One task: `make()` returns an object with `async def run(self)` and `heartbeat_ms`
    (ticks of its last pass, or None before the first). critical tasks gate the watchdog."""

    def __init__(self, name, make, max_silence_ms, critical=True):
        self.name = name
        self.make = make
        self.max_silence_ms = max_silence_ms
        self.critical = critical
        self.obj = None
        self.task = None
        self.started_ms = 0
        self.crashes = 0
        self.backoff_n = 0
        self.last_error = None
        self.restart_at_ms = None


class Supervisor:
    def __init__(self, clock, entries, force_safe, watchdog=None, period_ms=500,
                 crash_limit=3, crash_window_ms=60_000, backoff_ms=1000, log=print):
        self._clock = clock
        self.entries = entries
        self._force_safe = force_safe
        self._watchdog = watchdog       # a started machine.WDT, or None
        self.period_ms = period_ms
        self._crash_limit = crash_limit
        self._crash_window_ms = crash_window_ms
        self._backoff_ms = backoff_ms
        self._log = log
        self._crash_times = []
        self.failed = False             # gave up: outputs safe, watchdog left to bite
        self.feeds = 0
        self.heartbeat_ms = None

    def add(self, entry):
        """Supervises one more task (one built while running, as the grid's on its first
        message): started on the next pass, as a restart would be."""
        entry.restart_at_ms = self._clock.ticks_ms()
        self.entries.append(entry)

    def _start(self, entry):
        entry.obj = entry.make()
        entry.started_ms = self._clock.ticks_ms()
        entry.task = asyncio.create_task(self._guard(entry))

    async def _guard(self, entry):
        try:
            await entry.obj.run()
            raise RuntimeError("task returned")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in one task must not stop the others
            entry.last_error = "%s: %s" % (type(e).__name__, e)
            entry.task = None
            self._crashed(entry)

    def _crashed(self, entry):
        clock = self._clock
        now = clock.ticks_ms()
        window = self._crash_window_ms
        if clock.ticks_diff(now, entry.started_ms) >= window:
            entry.backoff_n = 0      # it ran well for a while: back off from the start again
        entry.crashes += 1
        self._log("supervisor: task %s crashed (%s)" % (entry.name, entry.last_error))
        if entry.critical:
            # Only the control path's crashes count toward giving up: a network task that
            # keeps failing must not reset the board.
            self._crash_times = [t for t in self._crash_times
                                 if clock.ticks_diff(now, t) < window]
            self._crash_times.append(now)
            if len(self._crash_times) >= self._crash_limit:
                self._give_up("%d crashes within %d s" % (len(self._crash_times),
                                                          window // 1000))
                return
        backoff = self._backoff_ms << min(entry.backoff_n, 5)
        entry.backoff_n += 1
        entry.restart_at_ms = clock.ticks_add(now, backoff)

    def _give_up(self, why):
        if not self.failed:
            self.failed = True
            self._force_safe()
            # Stop every task, so nothing drives an output again before the reset.
            for entry in self.entries:
                task = entry.task
                entry.task = None
                entry.restart_at_ms = None
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
            self._log("supervisor: %s: outputs safe, waiting for the watchdog reset" % why)

    def fresh(self, entry, now):
        beat = entry.obj.heartbeat_ms if entry.obj is not None else None
        if beat is None:
            beat = entry.started_ms
        return self._clock.ticks_diff(now, beat) <= entry.max_silence_ms

    def all_fresh(self, now):
        for entry in self.entries:
            if entry.critical and (entry.task is None or not self.fresh(entry, now)):
                return False
        return True

    def check(self):
        """One supervision pass: restart what is due, feed the watchdog if all is well."""
        now = self._clock.ticks_ms()
        self.heartbeat_ms = now
        if self.failed:
            return
        for entry in self.entries:
            if entry.task is None and entry.restart_at_ms is not None \
                    and self._clock.ticks_diff(now, entry.restart_at_ms) >= 0:
                entry.restart_at_ms = None
                self._log("supervisor: restarting %s" % entry.name)
                self._start(entry)
        if self._watchdog is not None and self.all_fresh(now):
            self._watchdog.feed()
            self.feeds += 1

    async def run(self):
        for entry in self.entries:
            self._start(entry)
        while True:
            self.check()
            await asyncio.sleep_ms(self.period_ms)
