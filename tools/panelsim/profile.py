"""Household load profile for the simulated panel: one window of 1-minute watts from a CSV."""

from array import array
from micropython import const

_ZERO_RUN_MIN = const(30)      # a run of exact zeros this long is missing data, not a house
_MISSING = const(-1 << 30)     # marker in the minute array while loading; never returned
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


class ProfileError(Exception):
    """A profile that cannot be used; str() is one line: 'file:line: problem'."""


def _basename(path):
    return path[path.rfind("/") + 1:]


def _day_number(y, m, d):
    """Days since 0001-01-01 (proleptic Gregorian), for minute arithmetic across months."""
    if not 1 <= m <= 12 or not 1 <= d <= 31:
        raise ValueError
    y1 = y - 1
    leap = 1 if m > 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 0
    return y1 * 365 + y1 // 4 - y1 // 100 + y1 // 400 + _DAYS_BEFORE_MONTH[m - 1] + leap + d - 1


def _parse_minute(text):
    """'YYYY-MM-DD HH:MM[:SS]' (or 'T' between) -> absolute minute; a bare number is seconds."""
    if "-" in text[1:]:
        date = text[:10]
        clock = text[11:]
        if (len(date) != 10 or date[4] != "-" or date[7] != "-" or len(clock) < 5
                or clock[2] != ":"):
            raise ValueError
        day = _day_number(int(date[:4]), int(date[5:7]), int(date[8:10]))
        h = int(clock[:2])
        mi = int(clock[3:5])
        if not 0 <= h < 24 or not 0 <= mi < 60:
            raise ValueError
        return day * 1440 + h * 60 + mi
    return int(float(text)) // 60


class Profile:
    """Watts of an uncontrolled load over a window of whole minutes, read from a CSV.

    path: a .csv or .csv.gz file whose first line names the columns. The time column
    ('Time', else the first column) holds 'YYYY-MM-DD HH:MM:SS' local times, or plain seconds.
    column: the watt column to use. date: the day to replay, 'YYYY-MM-DD' (a file timed in
    seconds has no dates); else start_day: whole days to skip from midnight of the first
    row's day. hours: window length, 1..24. interp: 'step' holds each minute's value for the
    whole minute (the 1-minute data are minute averages, so this is the default); 'linear'
    ramps from one minute's value to the next. Once loaded, `date` is the window's day,
    'YYYY-MM-DD' (None for a file timed in seconds).

    Missing data: minutes without a row, and runs of at least 30 minutes of exact zeros
    (counted across the window's edges), hold the last good value before them, even one from
    before the window; only a gap at the very start of the file takes the first good value
    after it. Shorter runs of zeros are real (a house can be off) and are kept.
    Only rows up to the window's end (plus a trailing run of zeros) are read and checked.

    Memory: one array('i') of watts per minute, 4 bytes each (5.6 kB for a day).
    """

    def __init__(self, path, column="Aggregate", start_day=0, hours=24, interp="step",
                 date=None):
        name = _basename(path)
        if interp not in ("step", "linear"):
            raise ProfileError("%s: interp must be 'step' or 'linear', got %r" % (name, interp))
        if not isinstance(hours, int) or not 1 <= hours <= 24:
            raise ProfileError("%s: hours must be an int in 1..24, got %r" % (name, hours))
        if not isinstance(start_day, int) or start_day < 0:
            raise ProfileError("%s: start_day must be an int >= 0, got %r" % (name, start_day))
        first_minute = None
        if date is not None:
            if start_day:
                raise ProfileError("%s: give a date or a start_day, not both" % name)
            try:
                if not isinstance(date, str) or len(date) != 10:
                    raise ValueError
                first_minute = _parse_minute(date + " 00:00")
            except (ValueError, IndexError):
                raise ProfileError("%s: the day must be a date YYYY-MM-DD, got %r"
                                   % (name, date))
        self.date = date
        self.path = path
        self.column = column
        self.linear = interp == "linear"
        self.minutes = hours * 60
        self.period_ms = self.minutes * 60000
        self.watts = array("i", (_MISSING for _ in range(self.minutes)))
        self.missing_minutes = 0    # minutes filled by holding a neighbour's value
        try:
            f = open(path, "rb")
        except OSError as e:
            raise ProfileError("%s: cannot open: %s" % (name, _oserror_text(e)))
        try:
            stream = f
            if path.endswith(".gz"):
                import deflate
                stream = deflate.DeflateIO(f, deflate.GZIP)
            self._load(stream, name, column, start_day, first_minute)
        finally:
            f.close()
        self._fill_missing(name)

    def _load(self, stream, name, column, start_day, start):
        lineno = 1
        header = self._readline(stream, name, lineno)
        if not header:
            raise ProfileError("%s:1: empty file, expected a header line" % name)
        cols = [c.strip() for c in _text(header, name, 1).split(",")]
        tcol = cols.index("Time") if "Time" in cols else 0
        if column not in cols or cols.index(column) == tcol:
            raise ProfileError("%s:1: no watt column %r; columns are %s"
                               % (name, column, ", ".join(cols)))
        wcol = cols.index(column)
        ncols = len(cols)
        tname = cols[tcol]
        # start: absolute minute of the window's first minute (None: from the first row)
        first_day = None        # the first row's date, for a window that misses the file
        n = self.minutes
        watts = self.watts
        zeros_before = 0        # exact zeros just before the window (for runs across its start)
        before = None           # last value before the window
        nonzero_before = None   # last non-zero value before the window
        zeros_after = 0         # exact zeros just after it
        in_window = 0
        while True:
            raw = self._readline(stream, name, lineno + 1)
            if not raw:
                break
            lineno += 1
            line = _text(raw, name, lineno).strip()
            if not line:
                continue
            fields = line.split(",")
            if len(fields) != ncols:
                raise ProfileError("%s:%d: expected %d columns, got %d"
                                   % (name, lineno, ncols, len(fields)))
            ttext = fields[tcol].strip()
            try:
                minute = _parse_minute(ttext)
            except (ValueError, IndexError):
                raise ProfileError("%s:%d: expected a time 'YYYY-MM-DD HH:MM:SS' or seconds in "
                                   "column %r, got %r" % (name, lineno, tname, ttext))
            wtext = fields[wcol].strip()
            try:
                w = float(wtext)
            except ValueError:
                w = None
            if w is None or w != w or not -1e7 < w < 1e7:
                raise ProfileError("%s:%d: expected a number in column %r, got %r"
                                   % (name, lineno, column, wtext))
            if first_day is None:
                first_day = ttext[:10] if "-" in ttext[1:] else ""
                if self.date is not None and not first_day:
                    raise ProfileError("%s:%d: a date needs times 'YYYY-MM-DD HH:MM:SS' in "
                                       "column %r, got %r" % (name, lineno, tname, ttext))
            if start is None:
                start = (minute // 1440 + start_day) * 1440
            i = minute - start
            if i < 0:
                zeros_before = zeros_before + 1 if w == 0 else 0
                before = int(w + 0.5) if w >= 0 else -int(0.5 - w)
                if w != 0:
                    nonzero_before = before
            elif i < n:
                if not in_window and first_day:
                    self.date = ttext[:10]      # a window is at most a day, from midnight
                in_window += 1
                watts[i] = int(w + 0.5) if w >= 0 else -int(0.5 - w)
            else:
                if w != 0 or zeros_after >= _ZERO_RUN_MIN:
                    break
                zeros_after += 1
        if first_day is None:
            raise ProfileError("%s:%d: no data rows" % (name, lineno))
        if not in_window and self.date is not None:
            raise ProfileError("%s:%d: no rows on %s (the file starts %s)"
                               % (name, lineno, self.date, first_day))
        if not in_window:
            raise ProfileError("%s:%d: no rows in the selected window (start_day %d, %d h)"
                               % (name, lineno, start_day, n // 60))
        self._zeros_before = zeros_before
        # what a gap at the window's start holds: the last good value before the window
        # (if zeros run into the window, the value before them, should the run be long)
        self._before = before
        self._nonzero_before = nonzero_before
        self._zeros_after = zeros_after if watts[n - 1] == 0 else 0
        self._last_line = lineno

    def _readline(self, stream, name, lineno):
        try:
            return stream.readline()
        except (OSError, EOFError, ValueError) as e:
            if self.path.endswith(".gz"):
                problem = "corrupt or truncated gzip data"
            elif isinstance(e, OSError):
                problem = "cannot read: " + _oserror_text(e)
            else:
                problem = "cannot read"
            raise ProfileError("%s:%d: %s" % (name, lineno, problem))

    def _fill_missing(self, name):
        watts = self.watts
        n = self.minutes
        lead_run = 0
        # Mark long runs of exact zeros as missing.
        i = 0
        while i < n:
            if watts[i] != 0:
                i += 1
                continue
            j = i
            while j < n and watts[j] == 0:
                j += 1
            run = j - i
            if i == 0:
                lead_run = run
                run += self._zeros_before
            if j == n:
                run += self._zeros_after
            if run >= _ZERO_RUN_MIN:
                for k in range(i, j):
                    watts[k] = _MISSING
            i = j
        # Hold the last good value; a gap at the start holds the last good value before the
        # window, or if there is none takes the first good value in it.
        first = 0
        while first < n and watts[first] == _MISSING:
            first += 1
        last = self._before
        if self._zeros_before and self._zeros_before + lead_run >= _ZERO_RUN_MIN:
            last = self._nonzero_before         # the zeros before were missing data too
        if last is None:
            if first == n:
                raise ProfileError("%s:%d: no usable data in the selected window (all missing)"
                                   % (name, self._last_line))
            last = watts[first]
        missing = 0
        for k in range(n):
            if watts[k] == _MISSING:
                watts[k] = last
                missing += 1
            else:
                last = watts[k]
        self.missing_minutes = missing

    def watts_at_ms(self, t_ms):
        """Watts (int) at t_ms since the window's start; the window repeats after its end."""
        t = t_ms % self.period_ms
        i = t // 60000
        w0 = self.watts[i]
        if not self.linear:
            return w0
        w1 = self.watts[i + 1] if i + 1 < self.minutes else self.watts[0]
        return w0 + (w1 - w0) * (t - i * 60000) // 60000

    def watts_at(self, t_s):
        """Watts (int) at second t_s (int) since the window's start."""
        return self.watts_at_ms(t_s * 1000)

    def next_change_ms(self, t_ms):
        """The next time after t_ms at which watts_at_ms() may change slope or step."""
        return (t_ms // 60000 + 1) * 60000


def load(path, day=0, column="Aggregate", hours=24, interp="step", date=None):
    """Profile(path, column, start_day=day, hours, interp, date): a shorthand for tools."""
    return Profile(path, column, start_day=day, hours=hours, interp=interp, date=date)


def default_path():
    """The profile shipped in tools/data/profiles (IDEAL house 65, 5 Feb 2018)."""
    here = __file__[:__file__.rfind("/")]           # .../tools/panelsim
    return here[:here.rfind("/") + 1] + "data/profiles/default_day.csv"


class ConstantProfile:
    """A fixed load in watts, for tests and bench runs; same interface as Profile."""

    linear = False

    def __init__(self, watts):
        self.w = int(watts)
        self.path = "<constant %d W>" % self.w

    def watts_at_ms(self, t_ms):
        return self.w

    def watts_at(self, t_s):
        return self.w

    def next_change_ms(self, t_ms):
        return t_ms + 3600000


def _text(raw, name, lineno):
    try:
        return str(raw, "utf-8")
    except UnicodeError:
        raise ProfileError("%s:%d: not UTF-8 text" % (name, lineno))


def _oserror_text(e):
    code = e.args[0] if e.args else None
    if code == 2:
        return "no such file"
    if code == 13:
        return "permission denied"
    if code == 21:
        return "is a directory"
    return "error %s" % (code,) if isinstance(code, int) else str(code)


class FeedProfile:
    """A household profile plus a sub-panel fed from this panel: its draw `feed_w` (set by
    whoever runs the sub-panel's own simulation) is part of this panel's total and seen by
    its mains CTs (split between the legs and at the power factor of the household's base
    load); the sub-panel's loads are seen by its own controller's CTs only. Read at least
    every `quantum_ms`, so a change of feed_w reaches the panel within that."""

    def __init__(self, inner, quantum_ms=200):
        self.inner = inner
        self.linear = inner.linear
        self.feed_w = 0
        self.quantum_ms = quantum_ms
        self.path = getattr(inner, "path", "") + " + a sub-panel"

    def watts_at_ms(self, t_ms):
        return self.inner.watts_at_ms(t_ms) + self.feed_w

    def watts_at(self, t_s):
        return self.inner.watts_at(t_s) + self.feed_w

    def next_change_ms(self, t_ms):
        t = self.inner.next_change_ms(t_ms)
        q = t_ms + self.quantum_ms
        return t if t < q else q
