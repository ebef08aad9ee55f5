"""Lifetime operation counts of the contactors, kept on flash without wearing the flash out:
written at most once per save period, and when the application stops, as a temporary file
renamed over the old one. A power cut loses at most one period's operations."""

import asyncio
import json

from micropython import const

_SLICE_MS = const(60000)         # the task wakes this often (heartbeat) to see if a save is due


class Wear:
    """contactors: (name, Contactor) pairs; their `ops` count since boot. path None: counts
    live in RAM only (simulator, tests)."""

    def __init__(self, contactors, clock, path=None, save_period_ms=3600000, log=print):
        self.contactors = contactors
        self._clock = clock
        self.path = path
        self.save_period_ms = save_period_ms
        self._log = log
        self.base = {}               # lifetime ops before this boot, by load name
        self.saves = 0
        self._saved = 0              # sum of ops since boot at the last save
        self.heartbeat_ms = None
        if path:
            self._load()

    def _load(self):
        import atomicfile            # read() also finds the old file a cut save set aside
        try:
            data = json.loads(atomicfile.read(self.path))
        except OSError:
            return                   # first boot: nothing counted yet
        except ValueError as e:
            self._log("wear: %s unreadable (%s): counting from 0" % (self.path, e))
            return
        if isinstance(data, dict):
            for name, n in data.items():
                if isinstance(n, int) and n >= 0:
                    self.base[name] = n

    def total(self, name, contactor):
        return self.base.get(name, 0) + contactor.ops

    def totals(self):
        return {name: self.total(name, c) for name, c in self.contactors}

    def _ops(self):
        n = 0
        for _, c in self.contactors:
            n += c.ops
        return n

    def save(self):
        """Writes the totals if anything switched since the last save; True if written."""
        ops = self._ops()
        if not self.path or ops == self._saved:
            return False
        import atomicfile            # loaded by the first save
        try:
            atomicfile.write(self.path, json.dumps(self.totals()))
        except OSError as e:         # flash full or failing: counts stay in RAM
            self._log("wear: cannot save %s: %s" % (self.path, e))
            return False
        self._saved = ops
        self.saves += 1
        return True

    async def run(self):
        clock = self._clock
        last = clock.ticks_ms()
        while True:
            now = clock.ticks_ms()
            self.heartbeat_ms = now
            if clock.ticks_diff(now, last) >= self.save_period_ms:
                last = now
                self.save()
            left = self.save_period_ms - clock.ticks_diff(now, last)
            await asyncio.sleep_ms(left if left < _SLICE_MS else _SLICE_MS)
