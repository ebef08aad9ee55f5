"""Grid capacity signals: a dynamic import-limit schedule, a subscribed capacity with
reservations, and emergency reductions, each kept as named shed.Limits sources (the
strictest wins, nothing above the installer's setpoint). No machine, no network module:
GridTask (at the end) talks only through the MQTT link it is given.

Time. Internally everything is "mono" seconds: counted from boot by accumulating clock
ticks (so the 2**30 ms tick wrap never shows). A wall clock (NTP on the ESP32, the injected
clock plus an epoch offset on the unix port) gives `_off`, wall minus mono, in "grid
seconds" since 2024-01-01 UTC, which stay small ints on the ESP32 until 2058. Without it,
absolute starts are refused and only relative ones ("from now") are taken. Interval
boundaries become ticks through the clock (`ticks_add`), queued in Limits with `from_ms`,
so a limit changes on the boundary's tick, not at the next pass of the grid task."""

import asyncio
import json
import os

from micropython import const

_EPOCH_DAYS = const(19723)      # 1970-01-01 .. 2024-01-01
_MAX_INTERVALS = const(24)
_MAX_AHEAD_S = const(604800)    # nothing starts more than 7 days ahead
_MAX_LEN_S = const(604800)
_ARM_S = const(3600)            # a boundary this close is queued in Limits by its tick
_MAX_PENDING = const(4)
_ANSWER_S = const(60)           # a reservation request unanswered this long is given up
_MAX_RESERVATIONS = const(8)
_KEEP_ANSWERS = const(4)

SRC_DYNAMIC = "grid"            # the schedule's import limit, or the fallback
SRC_SUB = "subscription"        # subscription_w plus the reservations in force
SRC_EMERGENCY = "emergency"
_NEXT = ">"                     # suffix: the same source's value queued for its next boundary

IMPORT = "IMPORT_CAPACITY_LIMIT"
EXPORT = "EXPORT_CAPACITY_LIMIT"
_UNITS = {"KW": 1000, "W": 1, "A": 0}


# --- time: ISO 8601 (UTC) and durations ----------------------------------------------------

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
        if v[4] != "-" or v[7] != "-" or v[10] != "T" or v[13] != ":" or v[16] != ":":
            raise ValueError("time must look like 2026-11-26T18:00:00Z, got %r" % v)
        try:
            y, mo, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
            h, mi, s = int(v[11:13]), int(v[14:16]), int(v[17:19])
        except ValueError:
            raise ValueError("time must look like 2026-11-26T18:00:00Z, got %r" % v)
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
            raise ValueError("time out of range: %r" % v)
        gs = (_days(y, mo, d) - _EPOCH_DAYS) * 86400 + h * 3600 + mi * 60 + s
    else:
        raise ValueError("time must look like 2026-11-26T18:00:00Z or be unix seconds, got %r"
                         % (v,))
    if gs < 0 or gs >= 1 << 30:
        raise ValueError("time must be in 2024..2057, got %r" % (v,))
    return gs


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


def parse_duration(v):
    """Seconds from an int or an ISO 8601 duration ("PT30M", "PT1H30M", "P1D"); ValueError."""
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and len(v) > 1 and v[0] == "P":
        n = 0
        num = ""
        in_time = False
        for ch in v[1:]:
            if "0" <= ch <= "9":
                num += ch
            elif ch == "T" and not num and not in_time:
                in_time = True
            elif num and (ch == "D" and not in_time or in_time and ch in "HMS"):
                n += int(num) * {"D": 86400, "H": 3600, "M": 60, "S": 1}[ch]
                num = ""
            else:
                raise ValueError("duration must be like PT30M or PT1H or seconds, got %r" % v)
        if num:
            raise ValueError("duration must be like PT30M or PT1H or seconds, got %r" % v)
    else:
        raise ValueError("duration must be an int of seconds or like PT30M, got %r" % (v,))
    if n < 1 or n > _MAX_LEN_S:
        raise ValueError("duration must be 1 s .. 7 days, got %r" % (v,))
    return n


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("%s must be a number, got %r" % (what, v))
    return v


def _intv(obj, key, lo, hi, unit):
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ValueError("%s must be an int in %d..%d %s, got %r" % (key, lo, hi, unit, v))
    return v


def _first_after(items, t, nxt):
    """The earliest start or end of items ([start, end, ...]) after t, or nxt."""
    for it in items:
        b = it[0]
        if b > t and (nxt is None or b < nxt):
            nxt = b
        b = it[1]
        if b > t and (nxt is None or b < nxt):
            nxt = b
    return nxt


def _allow(obj, keys):
    for key in obj:
        if key not in keys:
            raise ValueError("unknown field %s" % str(key)[:24])


class Grid:
    """limits: the shed.Limits; clock: ticks_ms/ticks_diff/ticks_add; setpoint_w: the
    installer's limit; subscription_w: the subscribed capacity (0: none); fallback_w: the
    import limit when no interval covers now or the source is silent (0: none);
    silence_s: how long the schedule may go without being sent again (0: no check);
    path: the file that keeps schedule and reservations over a reboot (None: not kept);
    log: a compliance.Log, or None."""

    def __init__(self, limits, clock, setpoint_w, subscription_w=0, fallback_w=0,
                 silence_s=0, volts=120, path="grid.json", log=None):
        self._limits = limits
        self._clock = clock
        self.setpoint_w = setpoint_w
        self.subscription_w = subscription_w
        self.fallback_w = fallback_w
        self.silence_s = silence_s
        self.volts = volts
        self.path = path
        self.log = log
        self._anchor = clock.ticks_ms()   # the tick at which mono seconds were _mono
        self._mono = 0
        self._off = None                  # grid seconds - mono seconds, once a wall clock is known
        self.intervals = []               # [start, end, import_w, import_a, export_w] (mono s)
        self.event_name = None
        self._heard = None                # mono s of the last schedule
        self.reservations = []            # [start, end, extra_w, fee_cents, id] (mono s)
        self.pending = {}                 # id -> [start, end, extra_w, max_fee_cents, sent]
        self.answers = []                 # the last few answers, newest last
        self.outbox = []                  # (subtopic, payload) for the network side
        self.emergency_w = None
        self._emergency_until = None
        self._armed = {}                  # source -> [w, a, change, next_w, next_a]
        self._stored = None               # what the file held, until a wall clock converts it
        self._saved = None                # what was last written, to skip writing it again
        self.replay_wanted = False
        self.monitor = None               # a compliance.Monitor, attached by the app
        self._dw = self._da = self._de = None
        self._what = None
        if path:
            try:
                with open(path) as f:
                    self._stored = json.loads(f.read())
            except (OSError, ValueError):
                self._stored = None
        self.update(self._anchor)     # the subscription and the fallback hold from the start

    # --- time ---------------------------------------------------------------------------
    def _advance(self, now):
        d = self._clock.ticks_diff(now, self._anchor)
        if d >= 1000:
            s = d // 1000
            self._mono += s
            self._anchor = self._clock.ticks_add(self._anchor, s * 1000)

    def mono_s(self, now):
        self._advance(now)
        return self._mono

    def wall_known(self):
        return self._off is not None

    def wall_gs(self, now):
        """Grid seconds now, or None without a wall clock."""
        m = self.mono_s(now)
        return None if self._off is None else m + self._off

    def unix_s(self, now):
        gs = self.wall_gs(now)
        return None if gs is None else gs + _EPOCH_DAYS * 86400

    def set_wall(self, unix_s, now):
        """The wall clock is known (NTP, or the simulator's epoch): unix seconds at tick now."""
        m = self.mono_s(now)
        first = self._off is None
        self._off = parse_time(int(unix_s)) - m
        if self._stored is not None:
            self._restore(self._stored, m)
            self._stored = None
            self.update(now)
        elif first and (self.intervals or self.reservations):
            self.save()      # what came relative to now can be kept from now on

    def _tick_of(self, t):
        # The tick at which mono second t begins (t close to now: within _ARM_S).
        return self._clock.ticks_add(self._anchor, (t - self._mono) * 1000)

    def _when(self, obj, key, now_m, what):
        """Mono seconds of obj[key] (absolute), or now when it is absent (relative)."""
        v = obj.get(key)
        if v is None:
            return now_m
        if self._off is None:
            raise ValueError("no wall clock yet (NTP): %s with an absolute start is refused; "
                             "leave out the start to begin now" % what)
        return parse_time(v) - self._off

    # --- the dynamic limit: an OpenADR 3 style event --------------------------------------
    def schedule(self, obj, now):
        """Validates and takes a whole schedule (replacing the old one), or raises ValueError
        and changes nothing. Returns the number of intervals."""
        m = self.mono_s(now)
        if not isinstance(obj, dict):
            raise ValueError("schedule must be a JSON object")
        _allow(obj, ("id", "objectType", "programID", "eventName", "priority",
                     "intervalPeriod", "payloadDescriptors", "intervals", "targets"))
        ivs = obj.get("intervals")
        if not isinstance(ivs, list) or len(ivs) > _MAX_INTERVALS:
            raise ValueError("intervals must be a list of 0..%d intervals" % _MAX_INTERVALS)
        units = {IMPORT: 1000, EXPORT: 1000}
        descs = obj.get("payloadDescriptors", [])
        if not isinstance(descs, list):
            raise ValueError("payloadDescriptors must be a list")
        for d in descs:
            if not isinstance(d, dict) or d.get("payloadType") not in units or \
                    d.get("units", "KW") not in _UNITS:
                raise ValueError("payloadDescriptors: payloadType must be %s or %s with units "
                                 "KW, W or A" % (IMPORT, EXPORT))
            units[d["payloadType"]] = _UNITS[d.get("units", "KW")]
        if units[EXPORT] == 0:
            raise ValueError("an export limit is given in KW or W")
        period = obj.get("intervalPeriod", {})
        if not isinstance(period, dict):
            raise ValueError("intervalPeriod must be an object")
        start = self._when(period, "start", m, "a schedule")
        dur = parse_duration(period["duration"]) if "duration" in period else None
        out = []
        prev_end = start
        for i in range(len(ivs)):
            iv = ivs[i]
            if not isinstance(iv, dict):
                raise ValueError("interval %d must be an object" % i)
            ip = iv.get("intervalPeriod", {})
            if not isinstance(ip, dict):
                raise ValueError("interval %d: intervalPeriod must be an object" % i)
            s = self._when(ip, "start", prev_end, "a schedule") if "start" in ip else prev_end
            d = parse_duration(ip["duration"]) if "duration" in ip else dur
            if d is None:
                raise ValueError("interval %d has no duration (nor has the event)" % i)
            e = s + d
            if s - m > _MAX_AHEAD_S:
                raise ValueError("interval %d starts more than 7 days ahead" % i)
            if e <= m:
                raise ValueError("interval %d ended at %s: expired" % (i, self._show(e)))
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
                if typ not in units or not isinstance(vals, list) or len(vals) != 1:
                    raise ValueError("interval %d: a payload is {\"type\": %s or %s, \"values\": "
                                     "[one number]}" % (i, IMPORT, EXPORT))
                v = _num(vals[0], "interval %d value" % i)
                scale = units[typ]
                if v < 0 or (scale and v * scale > 500000) or (not scale and v > 2000):
                    raise ValueError("interval %d: %s %r is out of range" % (i, typ, v))
                if typ == EXPORT:
                    exp_w = int(v * scale + 0.5)
                elif scale:
                    imp_w = int(v * scale + 0.5)
                else:
                    imp_a = int(v)
            out.append([s, e, imp_w, imp_a, exp_w])
            prev_end = e
        name = obj.get("eventName", obj.get("id"))
        self.intervals = out
        self.event_name = name if isinstance(name, str) and len(name) <= 40 else None
        self._heard = m
        self.save()
        self.update(now)
        return len(out)

    def _show(self, t):
        return format_time(t + self._off) if self._off is not None else "uptime %d s" % t

    def _dynamic_at(self, t):
        """The import W and A, export W and their origin in force at mono second t, left in
        _dw, _da, _de, _what (attributes, not a tuple: the steady pass allocates nothing)."""
        self._de = self._da = None
        self._dw = self.fallback_w or None
        if self.silence_s and self._heard is not None and t >= self._heard + self.silence_s:
            self._what = "silent"
            return
        for iv in self.intervals:
            if iv[0] <= t < iv[1]:
                self._dw = iv[2]
                self._da = iv[3]
                self._de = iv[4]
                self._what = "schedule"
                return
        self._what = "fallback"

    def _dynamic_change(self, t):
        nxt = _first_after(self.intervals, t, None)
        if self.silence_s and self._heard is not None:
            b = self._heard + self.silence_s
            if b > t and (nxt is None or b < nxt):
                nxt = b
        return nxt

    # --- subscription and reservations -----------------------------------------------------
    def _sub_at(self, t):
        if not self.subscription_w:
            return None
        w = self.subscription_w
        for r in self.reservations:
            if r[0] <= t < r[1]:
                w += r[2]
        return w

    def _sub_change(self, t):
        return _first_after(self.reservations, t, None)

    def reserve(self, start, duration_s, extra_w, now, max_fee_cents=0):
        """Queues a reservation request for the grid side; returns its id. start: ISO
        string or unix seconds (needs the wall clock), or None for now."""
        m = self.mono_s(now)
        if not self.subscription_w:
            raise ValueError("no subscription: set grid_subscription_w first")
        if self._off is None:
            raise ValueError("no wall clock yet (NTP): reservations need one")
        s = m if start is None else parse_time(start) - self._off
        dur = parse_duration(duration_s)
        if dur < 60 or dur > 86400:
            raise ValueError("duration_s must be 60..86400 s, got %d" % dur)
        room = self.setpoint_w - self.subscription_w
        if not isinstance(extra_w, int) or isinstance(extra_w, bool) or not 1 <= extra_w <= room:
            raise ValueError("extra_w must be an int in 1..%d W (the installer's setpoint %d W "
                             "less the subscription %d W), got %r" % (
                                 room, self.setpoint_w, self.subscription_w, extra_w))
        if s < m - 60 or s - m > _MAX_AHEAD_S:
            raise ValueError("start must be from now to 7 days ahead, got %s" % self._show(s))
        if not isinstance(max_fee_cents, int) or isinstance(max_fee_cents, bool) or \
                not 0 <= max_fee_cents <= 1000000:
            raise ValueError("max_fee_cents must be an int in 0..1000000, got %r"
                             % (max_fee_cents,))
        if len(self.pending) >= _MAX_PENDING:
            raise ValueError("%d requests already await an answer" % _MAX_PENDING)
        rid = "r%04x" % (int.from_bytes(os.urandom(2), "little"))
        self.pending[rid] = [s, s + dur, extra_w, max_fee_cents, m]
        req = {"id": rid, "start": format_time(s + self._off), "duration_s": dur,
               "extra_w": extra_w, "subscription_w": self.subscription_w}
        if max_fee_cents:
            req["max_fee_cents"] = max_fee_cents
        self.send("grid/request", json.dumps(req))
        return rid

    def accept(self, rid, now):
        """Re-requests a window that was answered with a fee, agreeing to that fee."""
        for a in self.answers:
            if a.get("id") == rid and a.get("status") == "fee":
                return self.reserve(a["start"], a["duration_s"], a["extra_w"], now,
                                    a["fee_cents"])
        raise ValueError("no fee quoted for request %r" % (rid,))

    def answer(self, obj, now):
        """The grid side's answer to a request: granted, fee (denied unless the fee is
        accepted; with the intervals' availability and price) or denied."""
        m = self.mono_s(now)
        rid = obj.get("id")
        status = obj.get("status")
        if status not in ("granted", "fee", "denied"):
            raise ValueError("status must be granted, fee or denied, got %r" % (status,))
        req = self.pending.pop(rid, None) if isinstance(rid, str) else None
        if req is None:
            raise ValueError("no request %r awaits an answer" % (rid,))
        fee = obj.get("fee_cents", 0)
        if not isinstance(fee, int) or isinstance(fee, bool) or fee < 0:
            raise ValueError("fee_cents must be an int >= 0, got %r" % (fee,))
        rec = {"id": rid, "status": status, "start": self._show(req[0]),
               "duration_s": req[1] - req[0], "extra_w": req[2], "fee_cents": fee}
        if status == "granted":
            if fee > req[3]:
                status = rec["status"] = "refused"   # more than we agreed to pay
                rec["reason"] = "fee %d above the %d cents agreed" % (fee, req[3])
            elif req[1] <= m:
                status = rec["status"] = "late"
            else:
                self.reservations.append([req[0], req[1], req[2], fee, rid])
                self.reservations.sort()
                del self.reservations[:-_MAX_RESERVATIONS]
                self.save()
                self.update(now)
        elif status == "fee":
            offers = obj.get("offers")
            if isinstance(offers, list):
                rec["offers"] = offers[:6]
        if isinstance(obj.get("reason"), str):
            rec["reason"] = obj["reason"][:60]
        self.answers.append(rec)
        del self.answers[:-_KEEP_ANSWERS]
        return status

    def cancel(self, rid, now):
        for r in self.reservations:
            if r[4] == rid:
                self.reservations.remove(r)
                self.save()
                self.update(now)
                return
        raise ValueError("no reservation %r" % (rid,))

    # --- emergency ----------------------------------------------------------------------
    def emergency(self, share_pct, duration_s, now):
        """Holds demand at share_pct of the subscription for duration_s, from now (needs no
        wall clock); share_pct None ends it."""
        if share_pct is None:
            self._limits.clear(SRC_EMERGENCY)
            self.emergency_w = self._emergency_until = None
            return None
        if not self.subscription_w:
            raise ValueError("no subscription: an emergency is a share of grid_subscription_w")
        if not isinstance(share_pct, int) or isinstance(share_pct, bool) or \
                not 0 <= share_pct <= 100:
            raise ValueError("share_pct must be an int in 0..100 %%, got %r" % (share_pct,))
        if not isinstance(duration_s, int) or isinstance(duration_s, bool) or \
                not 1 <= duration_s <= 86400:
            raise ValueError("duration_s must be an int in 1..86400 s, got %r" % (duration_s,))
        w = self.subscription_w * share_pct // 100
        until = self._clock.ticks_add(now, duration_s * 1000)
        self._limits.set(SRC_EMERGENCY, w=w, until_ms=until)
        self.emergency_w = w
        self._emergency_until = until
        return w

    # --- each pass of the grid task -------------------------------------------------------
    def update(self, now):
        """Drops what ended, gives answers up, and keeps each source's value and its next
        boundary queued in the Limits. Allocates only when something changed."""
        m = self.mono_s(now)
        ivs = self.intervals
        while ivs and ivs[0][1] <= m:
            ivs.pop(0)
        rs = self.reservations
        i = 0
        while i < len(rs):
            if rs[i][1] <= m:
                rs.pop(i)
            else:
                i += 1
        if self.pending:
            for rid in list(self.pending):
                if m - self.pending[rid][4] >= _ANSWER_S:
                    req = self.pending.pop(rid)
                    self.answers.append({"id": rid, "status": "no answer",
                                         "start": self._show(req[0]),
                                         "duration_s": req[1] - req[0], "extra_w": req[2]})
                    del self.answers[:-_KEEP_ANSWERS]
        if self._emergency_until is not None and \
                self._clock.ticks_diff(now, self._emergency_until) >= 0:
            self.emergency_w = self._emergency_until = None
        c = self._dynamic_change(m)
        nw = na = None
        if c is not None:
            self._dynamic_at(c)
            nw = self._dw
            na = self._da
        self._dynamic_at(m)
        self._arm(SRC_DYNAMIC, self._dw, self._da, c, nw, na)
        w = self._sub_at(m)
        c = self._sub_change(m)
        self._arm(SRC_SUB, w, None, c, None if c is None else self._sub_at(c), None)

    def _arm(self, name, w, a, change, nw, na):
        if change is not None and change - self._mono > _ARM_S:
            change = nw = na = None          # far off: a later pass queues it
        st = self._armed.get(name)
        if st is not None and st[0] == w and st[1] == a and st[2] == change and \
                st[3] == nw and st[4] == na:
            return
        lim = self._limits
        until = None if change is None else self._tick_of(change)
        if w is None and a is None:
            lim.clear(name)
        else:
            lim.set(name, w=w, a=a, until_ms=until)
        if until is None or (nw is None and na is None):
            lim.clear(name + _NEXT)
        else:
            lim.set(name + _NEXT, w=nw, a=na, from_ms=until)
        self._armed[name] = [w, a, change, nw, na]

    # --- persistence -----------------------------------------------------------------------
    def save(self):
        """Schedule and reservations to flash (temporary file, then rename), in grid
        seconds: kept only once the wall clock is known, and written only when they changed."""
        if not self.path or self._off is None:
            return
        off = self._off
        # Built once, compared and written from the same lists, streamed to the file: a
        # schedule arrives at the heap's peak (its parsed JSON and the command code alive).
        ivs = [[iv[0] + off, iv[1] + off, iv[2], iv[3], iv[4]] for iv in self.intervals]
        res = [[r[0] + off, r[1] + off, r[2], r[3], r[4]] for r in self.reservations]
        body = json.dumps([ivs, res, self.event_name])
        if body == self._saved:
            return   # the same schedule sent again: no flash write (its "heard" stays older)
        self._saved = body
        data = {"v": 1, "name": self.event_name,
                "heard": None if self._heard is None else self._heard + off,
                "iv": ivs, "res": res}
        import atomicfile    # loaded by the first save
        try:
            atomicfile.write(self.path, lambda f: json.dump(data, f))
        except OSError:
            pass     # a full or read-only flash: the schedule still applies until a reboot

    def _restore(self, data, m):
        off = self._off
        try:
            if data.get("v") != 1:
                return
            ivs = [[iv[0] - off, iv[1] - off, iv[2], iv[3], iv[4]] for iv in data["iv"]
                   if iv[1] - off > m]
            if not self.intervals and self._heard is None:
                self.intervals = ivs
                self.event_name = data.get("name")
                h = data.get("heard")
                self._heard = None if h is None else h - off
            for r in data["res"]:
                if r[1] - off > m:
                    self.reservations.append([r[0] - off, r[1] - off, r[2], r[3], r[4]])
            self.reservations.sort()
        except (KeyError, TypeError, IndexError):
            pass     # a damaged file: start without it (the fallback applies)

    # --- remote commands (commands.py routes <p>/cmd/grid/<sub> here) ---------------------
    def command(self, sub, obj, now):
        """Applies one command; returns the fields its event adds, or raises ValueError."""
        if sub == "limits":
            return {"intervals": self.schedule(obj, now)}
        if sub == "reserve":
            _allow(obj, ("id", "start", "duration_s", "extra_w", "max_fee_cents", "accept"))
            if "accept" in obj:
                return {"request": self.accept(obj["accept"], now)}
            return {"request": self.reserve(obj.get("start"), obj.get("duration_s"),
                                            obj.get("extra_w"), now,
                                            obj.get("max_fee_cents", 0))}
        if sub == "answer":
            _allow(obj, ("id", "status", "fee_cents", "offers", "reason"))
            return {"status": self.answer(obj, now)}
        if sub == "emergency":
            _allow(obj, ("id", "share_pct", "duration_s"))
            if "share_pct" not in obj:
                raise ValueError("share_pct is required (an int, or null to end it)")
            return {"limit_w": self.emergency(obj["share_pct"], obj.get("duration_s"), now)}
        if sub == "cancel":
            _allow(obj, ("id",))
            self.cancel(obj.get("id"), now)
            return {}
        if sub == "time":
            _allow(obj, ("id", "unix_s"))
            self.set_wall(_intv(obj, "unix_s", 1704067200, 2800000000, "s"), now)
            return {}
        if sub == "log":
            _allow(obj, ("id",))
            self.replay_wanted = True
            return {}
        raise ValueError("unknown grid command %s" % sub[:24])

    # --- compliance -------------------------------------------------------------------------
    def stamp(self):
        """Unix seconds of the last pass, or "u<uptime s>" without a wall clock."""
        if self._off is None:
            return "u%d" % self._mono
        return self._mono + self._off + _EPOCH_DAYS * 86400

    def watch(self, now, valid, total_w, limit_w, overload, source=None):
        """One compliance sample per control period (monitor: a compliance.Monitor).
        source: what set limit_w when the controller took it (default: the strictest now;
        a source changed since the controller's step would be logged beside its old limit)."""
        if self.monitor is not None:
            self.monitor.sample(self.mono_s(now), valid, total_w, limit_w,
                                source or self._limits.strictest(), overload)

    # --- network side -----------------------------------------------------------------------
    def send(self, subtopic, payload):
        if len(self.outbox) >= 8:
            self.outbox.pop(0)
        self.outbox.append((subtopic, payload))

    def state(self, now):
        """The grid part of the state payload."""
        m = self.mono_s(now)
        self._dynamic_at(m)
        w, a, exp, what = self._dw, self._da, self._de, self._what
        c = self._dynamic_change(m)
        res = []
        for r in self.reservations[:4]:
            res.append({"id": r[4], "start": self._show(r[0]), "end": self._show(r[1]),
                        "extra_w": r[2], "fee_cents": r[3], "active": r[0] <= m})
        left = 0
        if self._emergency_until is not None:
            left = self._clock.ticks_diff(self._emergency_until, now)
            left = (left + 999) // 1000 if left > 0 else 0
        return {"wall_clock": self._off is not None,
                "unix_s": None if self._off is None else self.stamp(), "import_limit_w": w,
                "import_limit_a": a, "export_limit_w": exp, "limit_from": what,
                "next_change_s": None if c is None else c - m,
                "event": self.event_name, "intervals": len(self.intervals),
                "subscription_w": self.subscription_w or None,
                "subscription_now_w": self._sub_at(m), "reservations": res,
                "pending": len(self.pending), "emergency_w": self.emergency_w,
                "emergency_s": left,
                "answers": self.answers[-2:]}


def attach(app):
    """Builds app.grid (and app.grid_task when app has an MQTT link) from app's settings:
    App.get_grid calls it on first use, so none of this is loaded before."""
    import compliance
    cfg = app.cfg
    g = Grid(app.limits, app.clock, app.setpoint_w, cfg["grid_subscription_w"],
             cfg["grid_fallback_w"], cfg["grid_silence_s"], cfg["volts"])
    g.monitor = compliance.Monitor(
        compliance.Log(publish=lambda line: g.send("grid/log", line)), g.stamp)
    g.update(app.clock.ticks_ms())
    app.grid = g
    if getattr(app, "mqtt", None) is not None:
        app.grid_task = GridTask(app, app.mqtt, cfg["mqtt_topic"], cfg["control_period_ms"])
        if app.supervisor is not None:
            # Built by a grid message while running: supervised from the next pass.
            entry = app.grid_entry()
            entry.restart_at_ms = app.clock.ticks_ms()
            app.supervisor.entries.append(entry)


class GridTask:
    """The grid signals' task, each control period: interval boundaries and expiries, the
    wall clock, one compliance sample, and what the Grid has to send (reservation requests,
    compliance log lines; the whole log when asked) through the MQTT link's bounded queue.
    app.get_grid() builds it with the Grid, so none of this is loaded until grid signals
    are configured or received."""

    def __init__(self, app, link, prefix, period_ms):
        self.app = app
        self.link = link
        self.prefix = prefix
        self.period_ms = period_ms
        self._wall_next = None
        self.heartbeat_ms = None
        self.ntp_port = 123
        self._ntp_addr = None

    async def _sntp(self):
        """Unix seconds from the SNTP server, or None: one UDP request on a non-blocking
        socket, its answer polled for up to 2 s. The server's name is resolved once."""
        host = self.app.cfg.get("ntp_host")
        if not host or not getattr(self.link, "connected", False):
            return None          # no network yet: try again next time
        import socket
        s = None
        try:
            if self._ntp_addr is None:
                self._ntp_addr = socket.getaddrinfo(host, self.ntp_port, 0,
                                                    socket.SOCK_DGRAM)[0][-1]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            q = bytearray(48)
            q[0] = 0x1B          # SNTP v3, client
            s.sendto(q, self._ntp_addr)
            for _ in range(40):
                await asyncio.sleep_ms(50)
                try:
                    r = s.recv(48)
                except OSError:
                    continue
                if len(r) == 48:
                    return int.from_bytes(r[40:44], "big") - 2208988800   # from 1900
            return None
        except OSError:
            return None
        finally:
            if s is not None:
                s.close()

    async def run(self):
        app = self.app
        clock = app.clock
        while True:
            now = clock.ticks_ms()
            self.heartbeat_ms = now
            g = app.grid
            if g is not None:
                if self._wall_next is None or clock.ticks_diff(now, self._wall_next) >= 0:
                    # Until the wall clock is known, try each minute; then re-read it hourly.
                    unix_s = app.wall()
                    if unix_s is None:
                        unix_s = await self._sntp()
                    now = clock.ticks_ms()
                    if unix_s is not None:
                        try:
                            g.set_wall(unix_s, now)
                        except ValueError:   # a server's nonsense (before 2024): not taken
                            pass
                    self._wall_next = clock.ticks_add(now, 3600000 if g.wall_known() else 60000)
                g.update(now)
                c = app.controller
                s = app.sampler
                if app.control.steps:       # the controller has taken a limit
                    g.watch(now, bool(s.valid), s.total_w, c.limit_w, c.state == "overload",
                            c.limit_source)
                while g.outbox:
                    sub, payload = g.outbox.pop(0)
                    await self.link.send(self.prefix + "/" + sub, payload)
                if g.replay_wanted:
                    g.replay_wanted = False
                    await self._replay(g)
            await asyncio.sleep_ms(self.period_ms)

    async def _replay(self, g):
        # The whole log from flash, a few lines per message, each sent once the queue has room.
        topic = self.prefix + "/grid/compliance"
        chunk = []
        size = 0
        n = 0
        for line in g.monitor.log.read():
            chunk.append(line)
            size += len(line) + 1
            n += 1
            if size > 700:
                await self.link.send(topic, "\n".join(chunk))
                self.heartbeat_ms = self.app.clock.ticks_ms()
                chunk = []
                size = 0
        if chunk:
            await self.link.send(topic, "\n".join(chunk))
        await self.link.send(topic, json.dumps({"end": n}))
