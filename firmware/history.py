"""The last hour of the panel for the status page: a ring of fixed, preallocated integer
arrays, one point per period (360 x 10 s). Each point holds the highest panel power metered
in its period and the lowest limit in force (0: none), so a short peak or a limit step
inside a period still shows. Imported only with the web page on (web.py)."""

from array import array

from micropython import const

_NO_LIMIT = const(0)


class History:
    def __init__(self, clock, points=360, period_ms=10000):
        self._clock = clock
        self.period_ms = period_ms
        # 4 bytes a value: panel power and limits reach 960 kW (config.py limit_w)
        self.peak_w = array("i", bytes(4 * points))
        self.limit_w = array("i", bytes(4 * points))
        self.points = points
        self.count = 0              # points filled, up to `points`
        self._head = 0              # the slot the next point goes to
        self._start_ms = None       # when the open period began
        self._peak = 0
        self._limit = _NO_LIMIT
        self.closed_ms = None       # ticks when the newest point was closed

    def add(self, now, total_w, limit_w):
        """One measurement (a control step's). limit_w None: nothing limits."""
        clock = self._clock
        if self._start_ms is None:
            self._start_ms = now
            self._peak = total_w
            self._limit = limit_w or _NO_LIMIT
            return
        if clock.ticks_diff(now, self._start_ms) >= self.period_ms:
            self._close(now)
            self._peak = total_w
            self._limit = limit_w or _NO_LIMIT
            return
        if total_w > self._peak:
            self._peak = total_w
        if limit_w and (self._limit == _NO_LIMIT or limit_w < self._limit):
            self._limit = limit_w

    def _close(self, now):
        i = self._head
        self.peak_w[i] = self._peak
        self.limit_w[i] = self._limit
        self._head = (i + 1) % self.points
        if self.count < self.points:
            self.count += 1
        self.closed_ms = now
        start = self._clock.ticks_add(self._start_ms, self.period_ms)
        # A gap (the task held up) starts the next period now rather than owing points.
        self._start_ms = start if self._clock.ticks_diff(now, start) < self.period_ms else now

    def json_body(self, now, per_chunk=30):
        """The points as JSON, oldest first: an async iterator of small pieces for the
        response, each after a yield to the scheduler (on the ESP32 cost model a piece of 30
        points holds it ~5 ms; the whole hour at once held it 85 ms: tests/test_web_costs.py).
        A point closed while it streams may show twice or not at all: display only."""
        return _JsonBody(self, now, per_chunk)


class _JsonBody:
    def __init__(self, hist, now, per_chunk):
        self._h = hist
        self._per = per_chunk
        self._n = hist.count
        self._first = (hist._head - hist.count) % hist.points
        self._series = 0        # 0: the head, 1: peak_w, 2: limit_w, 3: the end
        self._i = 0
        age_s = 0 if hist.closed_ms is None else \
            hist._clock.ticks_diff(now, hist.closed_ms) // 1000
        self._head = '{"period_s": %d, "age_s": %d, "points": %d, "peak_w": [' % (
            hist.period_ms // 1000, age_s, self._n)

    def __aiter__(self):
        return self

    async def __anext__(self):
        import asyncio
        if self._series == 0:
            self._series = 1
            return self._head
        if self._series == 3:
            raise StopAsyncIteration
        await asyncio.sleep_ms(0)
        h = self._h
        n = self._n
        i = self._i
        if i >= n:          # this series done: close it, open the next
            self._i = 0
            self._series += 1
            return '], "limit_w": [' if self._series == 2 else "]}"
        end = i + self._per if i + self._per < n else n
        self._i = end
        series = h.peak_w if self._series == 1 else h.limit_w
        points = h.points
        first = self._first
        out = ",".join([str(series[(first + k) % points]) for k in range(i, end)])
        return out + "," if end < n else out
