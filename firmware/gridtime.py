"""Time as the grid signals give it: ISO 8601 UTC times and durations, read and written as
"grid seconds", counted from 2024-01-01 UTC so that they stay small ints on the ESP32 until
2058. Pure arithmetic: no clock, no network."""

from micropython import const

_EPOCH_DAYS = const(19723)      # 1970-01-01 .. 2024-01-01
_MAX_LEN_S = const(604800)      # the longest duration taken: 7 days
MAX_AHEAD_S = const(604800)     # nothing (interval, reservation) starts more than 7 days ahead


def _days(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y -= 1 if m <= 2 else 0
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_time(v):
    """Grid seconds from "YYYY-MM-DDTHH:MM:SSZ" (or +00:00) or unix seconds; ValueError."""
    if isinstance(v, int) and not isinstance(v, bool):
        gs = v - _EPOCH_DAYS * 86400
    elif isinstance(v, str) and (len(v) == 20 and v[19] == "Z" or
                                 len(v) == 25 and v[19:] == "+00:00"):
        for i in range(19):
            # digits where digits belong (int() alone would take " 1" or "+1")
            c = "dddd-dd-ddTdd:dd:dd"[i]
            if (v[i] != c) if c != "d" else not "0" <= v[i] <= "9":
                raise ValueError("time must look like 2026-11-26T18:00:00Z, got %r" % v)
        y, mo, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
        h, mi, s = int(v[11:13]), int(v[14:16]), int(v[17:19])
        # the day must exist in its month: 2026-02-30 is refused, not read as 2 March
        if not (1 <= mo <= 12 and 1 <= d and h < 24 and mi < 60 and s < 60) or \
                _days(y, mo, d) >= _days(y + mo // 12, mo % 12 + 1, 1):
            raise ValueError("time out of range: %r" % v)
        gs = (_days(y, mo, d) - _EPOCH_DAYS) * 86400 + h * 3600 + mi * 60 + s
    else:
        raise ValueError("time must look like 2026-11-26T18:00:00Z or be unix seconds, got %r"
                         % (v,))
    if gs < 0 or gs >= 1 << 30:
        raise ValueError("time must be in 2024..2057, got %r" % (v,))
    return gs


def to_unix(gs):
    """Unix seconds of grid seconds."""
    return gs + _EPOCH_DAYS * 86400


def format_time(gs):
    """ISO 8601 UTC of grid seconds."""
    z = gs // 86400 + _EPOCH_DAYS + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    s = gs % 86400
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


def show(mono_s, off):
    """A moment for people: ISO 8601 UTC of mono_s (seconds since boot) when the wall clock's
    offset off (grid seconds less mono seconds) is known, else "uptime N s"."""
    return format_time(mono_s + off) if off is not None else "uptime %d s" % mono_s


def parse_duration(v):
    """Seconds from an int or an ISO 8601 duration ("PT30M", "PT1H30M", "P1D"); ValueError."""
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and len(v) > 1 and v[0] == "P":
        n = 0
        num = ""
        last = -1         # "DTHMS".find of the last designator: each at most once, in order
        for ch in v[1:]:
            if "0" <= ch <= "9":
                num += ch
                continue
            k = "DTHMS".find(ch)
            # T takes no number and comes before H, M, S; D, H, M, S each follow a number
            if k <= last or (k == 1) == bool(num) or k > 1 and last < 1:
                raise ValueError("duration must be like PT30M or PT1H or seconds, got %r" % v)
            if k != 1:
                n += int(num) * (86400, 0, 3600, 60, 1)[k]
                num = ""
            last = k
        if num or last == 1:
            raise ValueError("duration must be like PT30M or PT1H or seconds, got %r" % v)
    else:
        raise ValueError("duration must be an int of seconds or like PT30M, got %r" % (v,))
    if n < 1 or n > _MAX_LEN_S:
        raise ValueError("duration must be 1 s .. 7 days, got %r" % (v,))
    return n
