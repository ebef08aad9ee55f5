"""The grid's messages checked before anything changes: an OpenADR 3 style event (the dynamic
import limit schedule, whole or one page of it) validated into intervals, and the field check
every grid command makes. Pure: no clock, no I/O; a refusal is a ValueError with a readable
message. Loaded by the first grid message (Grid.schedule, Grid.command), not with the Grid."""

from micropython import const

from gridtime import MAX_AHEAD_S, parse_duration, parse_time, show

# A day-ahead envelope: 48 intervals (half-hours), whole or in pages (gridpages.py).
MAX_INTERVALS = const(48)

IMPORT = "IMPORT_CAPACITY_LIMIT"
EXPORT = "EXPORT_CAPACITY_LIMIT"
_UNITS = {"KW": 1000, "W": 1, "A": 0}


def allow(obj, keys, where=""):
    """Refuses a field outside keys (where: what the message names first)."""
    for key in obj:
        if key not in keys:
            k = key[:24]
            if k != repr(k)[1:-1]:     # a newline or such in the name: shown escaped
                k = repr(k)
            raise ValueError("%sunknown field %s" % (where, k))


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:   # v != v: NaN
        raise ValueError("%s must be a number, got %r" % (what, v))
    return v


def _when(obj, key, now_m, off):
    """Mono seconds of obj[key] (absolute), or now_m when it is absent (relative)."""
    v = obj.get(key)
    if v is None:
        return now_m
    if off is None:
        raise ValueError("no wall clock yet (NTP): a schedule with an absolute start is "
                         "refused; leave out the start to begin now")
    return parse_time(v) - off


def intervals(obj, m, off):
    """The event obj (or one page of it) checked whole, at mono second m with the wall
    clock's offset off (grid seconds less mono seconds, None when unknown): returns its
    intervals, (start, end, import_w, import_a, export_w) each (mono s; None where not
    given), and its name (None unless a short string); or raises ValueError."""
    if not isinstance(obj, dict):
        raise ValueError("schedule must be a JSON object")
    allow(obj, ("id", "objectType", "programID", "eventName", "priority",
                "intervalPeriod", "payloadDescriptors", "intervals", "targets", "page",
                "pages"))
    ivs = obj.get("intervals")
    if not isinstance(ivs, list):
        raise ValueError("intervals must be a list of 0..%d intervals" % MAX_INTERVALS)
    if len(ivs) > MAX_INTERVALS:
        raise ValueError("%d intervals, limit %d" % (len(ivs), MAX_INTERVALS))
    units = {IMPORT: 1000, EXPORT: 1000}
    descs = obj.get("payloadDescriptors", [])
    if not isinstance(descs, list):
        raise ValueError("payloadDescriptors must be a list")
    for d in descs:
        # str first: a list where a name belongs must be refused, not raise TypeError in "in"
        if not isinstance(d, dict) or not isinstance(d.get("payloadType"), str) or \
                d["payloadType"] not in units or not isinstance(d.get("units", "KW"), str) or \
                d.get("units", "KW") not in _UNITS:
            raise ValueError("payloadDescriptors: payloadType must be %s or %s with units "
                             "KW, W or A" % (IMPORT, EXPORT))
        allow(d, ("objectType", "payloadType", "units"), "payloadDescriptors: ")
        units[d["payloadType"]] = _UNITS[d.get("units", "KW")]
    if units[EXPORT] == 0:
        raise ValueError("an export limit is given in KW or W")
    period = obj.get("intervalPeriod", {})
    if not isinstance(period, dict):
        raise ValueError("intervalPeriod must be an object")
    allow(period, ("start", "duration"), "intervalPeriod: ")
    start = _when(period, "start", m, off)
    dur = parse_duration(period["duration"]) if "duration" in period else None
    out = []
    prev_end = start
    for i in range(len(ivs)):
        iv = ivs[i]
        if not isinstance(iv, dict):
            raise ValueError("interval %d must be an object" % i)
        allow(iv, ("id", "intervalPeriod", "payloads"), "interval %d: " % i)
        ip = iv.get("intervalPeriod", {})
        if not isinstance(ip, dict):
            raise ValueError("interval %d: intervalPeriod must be an object" % i)
        allow(ip, ("start", "duration"), "interval %d: intervalPeriod: " % i)
        s = _when(ip, "start", prev_end, off) if "start" in ip else prev_end
        d = parse_duration(ip["duration"]) if "duration" in ip else dur
        if d is None:
            raise ValueError("interval %d has no duration (nor has the event)" % i)
        e = s + d
        if s - m > MAX_AHEAD_S:
            raise ValueError("interval %d starts more than 7 days ahead" % i)
        if e <= m:
            raise ValueError("interval %d ended at %s: expired" % (i, show(e, off)))
        if out and s < out[-1][1]:
            raise ValueError("interval %d overlaps interval %d (or is out of order)"
                             % (i, i - 1))
        imp_w = imp_a = exp_w = None
        pls = iv.get("payloads")
        if not isinstance(pls, list) or not pls:
            raise ValueError("interval %d: payloads must be a non-empty list" % i)
        for p in pls:
            typ = p.get("type") if isinstance(p, dict) else None
            vals = p.get("values") if typ else None
            if not isinstance(typ, str) or typ not in units or not isinstance(vals, list) or \
                    len(vals) != 1:
                raise ValueError("interval %d: a payload is {\"type\": %s or %s, \"values\": "
                                 "[one number]}" % (i, IMPORT, EXPORT))
            allow(p, ("type", "values"), "interval %d: payload: " % i)
            v = _num(vals[0], "interval %d value" % i)
            scale = units[typ]
            if v < 0 or (scale and v * scale > 500000) or (not scale and v > 2000):
                raise ValueError("interval %d: %s %r is out of range" % (i, typ, v))
            if not scale and 0 < v < 1:
                # Amps apply in whole amps rounded down (never above the grid's limit): under
                # 1 A that would be 0 A, "shed everything", which the grid did not ask for.
                raise ValueError("interval %d: %r A per leg: an amp limit is 0 or 1..2000 A "
                                 "(fractions round down)" % (i, v))
            if typ == EXPORT:
                exp_w = int(v * scale + 0.5)
            elif scale:
                imp_w = int(v * scale + 0.5)
            else:
                imp_a = int(v)
        out.append((s, e, imp_w, imp_a, exp_w))     # a tuple: 32 B on the ESP32, a list 48
        prev_end = e
    name = obj.get("eventName", obj.get("id"))
    return out, (name if isinstance(name, str) and len(name) <= 40 else None)

