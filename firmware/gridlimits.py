"""The grid's capacity signals kept as named limits.Limits sources (the strictest wins, nothing
above the installer's setpoint): the dynamic import limit from a schedule, a subscribed
capacity with the reservations granted on top, and emergency reductions; and kept on flash
(grid.json) over a reboot. No machine, no network: grid.py's task carries what it sends.

Time. Internally everything is "mono" seconds: counted from boot by accumulating clock
ticks (so the 2**30 ms tick wrap never shows). A wall clock (NTP on the ESP32, the injected
clock plus an epoch offset on the unix port) gives `_off`, wall minus mono, in grid seconds
(gridtime.py). Without it, absolute starts are refused and only relative ones ("from now")
are taken. Interval boundaries become ticks through the clock (`ticks_add`), queued in
Limits with `from_ms`, so a limit changes on the boundary's tick, not at the next pass of
the grid task."""
# Over 500 lines because Grid is one model: schedule, subscription, reservations and
# emergencies set the same Limits sources and are kept in the same grid.json, and each
# message is checked against what the others already hold.

import json
import os

from micropython import const

from gridtime import MAX_AHEAD_S, format_time, parse_duration, parse_time, show, to_unix

_ARM_S = const(3600)            # a boundary this close is queued in Limits by its tick
_MAX_PENDING = const(4)
_ANSWER_S = const(60)           # a reservation request unanswered this long is given up
_MAX_RESERVATIONS = const(8)
_KEEP_ANSWERS = const(4)
_RETRY_S = const(10)            # a request or notice the grid has not acknowledged: sent again
_TRIES = const(6)               # at most this many sends of a notice (a minute), then given up
_MAX_NOTICES = const(8)         # notices awaiting an ack; one more gives the oldest up
_PAGES_WAIT_S = const(60)       # a paged schedule whose next page does not come: dropped

SRC_DYNAMIC = "grid"            # the schedule's import limit, or the fallback
SRC_SUB = "subscription"        # subscription_w plus the reservations in force
SRC_EMERGENCY = "emergency"
_NEXT = ">"                     # suffix: the same source's value queued for its next boundary


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


class Grid:
    """limits: the limits.Limits; clock: ticks_ms/ticks_diff/ticks_add; setpoint_w: the
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
        self.intervals = []               # (start, end, import_w, import_a, export_w) (mono s)
        self._pg = None                   # a gridpages.Pages being received, or None
        self.event_name = None
        self._heard = None                # mono s of the last schedule
        self.reservations = []            # [start, end, extra_w, fee_cents, id] (mono s)
        # id -> [start, end, extra_w, max_fee_cents, sent, request, resend] (mono s)
        self.pending = {}
        # The next request id's number: random at boot, so ids differ across reboots, then
        # counted, so no two in a boot are the same (tests set it).
        self.next_id = int.from_bytes(os.urandom(2), "little")
        self.notices = []                 # [n, id, payload, resend, sends]: awaiting the grid's ack
        self._n = 0                       # the last notice's number
        self.notices_lost = 0             # notices given up unacknowledged
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
        # An export.Soaker (the app's, when built: grid.attach): the envelope's export limit
        # is handed to it as source "grid" and cleared when no interval sets one.
        self.soaker = None
        self._soak_w = None
        if path:
            import atomicfile    # read() also finds the old file a cut save set aside
            try:
                self._stored = json.loads(atomicfile.read(path))
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
        return None if gs is None else to_unix(gs)

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

    # --- the dynamic limit: an OpenADR 3 style event (gridevent.py checks it) -------------
    def schedule(self, obj, now):
        """Validates and takes a whole schedule (replacing the old one, and dropping a paged
        one half received), or raises ValueError and changes nothing. Returns the number of
        intervals."""
        import gridevent     # loaded by the first grid message
        m = self.mono_s(now)
        ivs, name = gridevent.intervals(obj, m, self._off)
        self._pg = None
        self._take(ivs, name, m, now)
        return len(self.intervals)

    def _take(self, ivs, name, m, now):
        self.intervals = ivs
        self.event_name = name
        self._heard = m
        self.save()
        self.update(now)

    def page(self, obj, now):
        """One page of a schedule too long for one message (gridpages.py, loaded by the
        first page): held apart until every page of its id is in, then the schedule
        replaces the old one at once. Raises ValueError and changes nothing (the pages held
        neither). Returns the event's fields: page, pages, have (pages held), and intervals
        once in force."""
        import gridpages
        m = self.mono_s(now)
        self._pg, out, ivs, name = gridpages.add(self._pg, obj, m, self._off)
        if ivs is not None:
            self._take(ivs, name, m, now)
            out["intervals"] = len(self.intervals)
        return out

    def _show(self, t):
        return show(t, self._off)

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
                if iv[2] is not None or iv[3] is not None:
                    # (one with only an export limit leaves the import at the fallback)
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
        if s < m - 60 or s - m > MAX_AHEAD_S:
            raise ValueError("start must be from now to 7 days ahead, got %s" % self._show(s))
        if not isinstance(max_fee_cents, int) or isinstance(max_fee_cents, bool) or \
                not 0 <= max_fee_cents <= 1000000:
            raise ValueError("max_fee_cents must be an int in 0..1000000, got %r"
                             % (max_fee_cents,))
        if len(self.pending) >= _MAX_PENDING:
            raise ValueError("%d requests already await an answer" % _MAX_PENDING)
        while True:
            rid = "r%04x" % self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFF
            if rid not in self.pending and not [r for r in self.reservations if r[4] == rid]:
                break
        req = {"id": rid, "start": format_time(s + self._off), "duration_s": dur,
               "extra_w": extra_w, "subscription_w": self.subscription_w}
        if max_fee_cents:
            req["max_fee_cents"] = max_fee_cents
        req = json.dumps(req)
        # Sent again every _RETRY_S until answered (the answer is its ack), or given up.
        self.pending[rid] = [s, s + dur, extra_w, max_fee_cents, m, req, m + _RETRY_S]
        self.send("grid/request", req)
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
        req = self.pending.get(rid) if isinstance(rid, str) else None
        if req is None:
            raise ValueError("no request %r awaits an answer" % (rid,))
        fee = obj.get("fee_cents", 0)
        if not isinstance(fee, int) or isinstance(fee, bool) or fee < 0:
            raise ValueError("fee_cents must be an int >= 0, got %r" % (fee,))
        del self.pending[rid]        # checked whole: from here on it is taken
        rec = {"id": rid, "status": status, "start": self._show(req[0]),
               "duration_s": req[1] - req[0], "extra_w": req[2], "fee_cents": fee}
        if status == "granted":
            why = None
            if fee > req[3]:
                why = "fee %d above the %d cents agreed" % (fee, req[3])
            elif req[1] <= m:
                why = "the window ended before the grant"
            elif len(self.reservations) >= _MAX_RESERVATIONS:
                # Full: the new grant is refused; none held (paid for, maybe in force) is
                # evicted to make room.
                why = "table full: %d reservations held" % _MAX_RESERVATIONS
            if why:
                status = rec["status"] = "refused"
                rec["reason"] = why
                self.notify(rid, "refused", m, why)
            else:
                self.reservations.append([req[0], req[1], req[2], fee, rid])
                self.reservations.sort()
                self.notify(rid, "granted", m)
                self.save()
                self.update(now)
        elif status == "fee":
            offers = obj.get("offers")
            if isinstance(offers, list):
                rec["offers"] = offers[:6]
        if "reason" not in rec and isinstance(obj.get("reason"), str):
            rec["reason"] = obj["reason"][:60]
        self.answers.append(rec)
        del self.answers[:-_KEEP_ANSWERS]
        return status

    def cancel(self, rid, now):
        for r in self.reservations:
            if r[4] == rid:
                self.reservations.remove(r)
                self.notify(rid, "cancelled", self.mono_s(now))
                self.save()
                self.update(now)
                return
        raise ValueError("no reservation %r" % (rid,))

    # --- telling the grid: every change of a reservation's state, acknowledged -------------
    def notify(self, rid, state, m, reason=None):
        """Sends a reservation's new state (granted, refused, cancelled, no answer, ended) on
        grid/reservation as {"n", "id", "state"[, "reason"]}; sent again every _RETRY_S until
        the grid acks n and id (cmd/grid/ack), at most _TRIES times. Never waits."""
        self._n = (self._n + 1) & 0x3FFFFFFF
        msg = {"n": self._n, "id": rid, "state": state}
        if reason:
            msg["reason"] = reason
        msg = json.dumps(msg)
        if len(self.notices) >= _MAX_NOTICES:
            self.notices.pop(0)
            self.notices_lost += 1
        self.notices.append([self._n, rid, msg, m + _RETRY_S, 1])
        self.send("grid/reservation", msg)

    def ack(self, n, rid):
        """The grid has a notice: it is not sent again."""
        for x in self.notices:
            if x[0] == n and x[1] == rid:
                self.notices.remove(x)
                return
        raise ValueError("no notice %r for %r awaits an ack" % (n, rid))

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
        if self._pg is not None and m - self._pg.heard >= _PAGES_WAIT_S:
            self._pg = None            # the rest of a paged schedule never came
        rs = self.reservations
        i = 0
        n = len(rs)
        while i < len(rs):
            if rs[i][1] <= m:
                self.notify(rs.pop(i)[4], "ended", m)
            else:
                i += 1
        if len(rs) != n:
            self.save()      # so an ended one is not restored (and told again) after a reboot
        if self.pending:
            for rid in list(self.pending):
                req = self.pending[rid]
                if m - req[4] >= _ANSWER_S:
                    del self.pending[rid]
                    self.answers.append({"id": rid, "status": "no answer",
                                         "start": self._show(req[0]),
                                         "duration_s": req[1] - req[0], "extra_w": req[2]})
                    del self.answers[:-_KEEP_ANSWERS]
                    # a grant that comes after this is refused: the grid can free the room
                    self.notify(rid, "no answer", m)
                elif m >= req[6]:
                    req[6] = m + _RETRY_S
                    self.send("grid/request", req[5])
        nb = self.notices
        i = 0
        while i < len(nb):
            x = nb[i]
            if m >= x[3]:
                if x[4] >= _TRIES:
                    nb.pop(i)
                    self.notices_lost += 1
                    continue
                x[3] = m + _RETRY_S
                x[4] += 1
                self.send("grid/reservation", x[2])
            i += 1
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
        s = self.soaker
        if s is not None and self._de != self._soak_w:
            # Taken at this pass (each control period), not queued by tick: an export limit
            # is met by soaking, which the import limit and the fail-safe rules still bound.
            if self._de is None:
                s.clear_limit(SRC_DYNAMIC)
            else:
                s.set_limit(SRC_DYNAMIC, self._de)
            self._soak_w = self._de
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
        # A schedule arrives at the heap's peak (its last page parsed, its pages held): the
        # file's text is made a row at a time, for its digest and then for the file, never
        # whole (2 KB at 48 intervals) nor as lists in grid seconds (1.8 KB more). What was
        # written is remembered by that digest, 32 B. "heard" is left out of it.
        import hashlib
        h = hashlib.sha256()
        for piece in self._text(False):
            h.update(piece)
        body = h.digest()
        if body == self._saved:
            return   # the same schedule sent again: no flash write (its "heard" stays older)

        def write(f):
            for piece in self._text(True):
                f.write(piece)
        import atomicfile    # loaded by the first save
        try:
            atomicfile.write(self.path, write)
        except OSError:
            return   # a full or read-only flash: the schedule still applies until a reboot
        self._saved = body   # only once written: the same schedule again retries a failed write

    def _text(self, heard):
        # grid.json in pieces: {"v": 1, "name", "heard" (null unless heard), "iv", "res"},
        # each interval and reservation a row in grid seconds.
        off = self._off
        h = self._heard if heard else None
        yield '{"v": 1, "name": %s, "heard": %s, "iv": [' % (
            json.dumps(self.event_name), json.dumps(None if h is None else h + off))
        sep = ""
        for iv in self.intervals:
            yield sep + json.dumps((iv[0] + off, iv[1] + off, iv[2], iv[3], iv[4]))
            sep = ", "
        yield '], "res": ['
        sep = ""
        for r in self.reservations:
            yield sep + json.dumps((r[0] + off, r[1] + off, r[2], r[3], r[4]))
            sep = ", "
        yield "]}"

    def _restore(self, data, m):
        off = self._off
        try:
            if data.get("v") != 1:
                return
            ivs = [(iv[0] - off, iv[1] - off, iv[2], iv[3], iv[4]) for iv in data["iv"]
                   if iv[1] - off > m]
            if not self.intervals and self._heard is None:
                self.intervals = ivs
                self.event_name = data.get("name")
                h = data.get("heard")
                self._heard = None if h is None else h - off
            for r in data["res"]:
                # one that ended while the board was off is dropped by update(), which
                # tells the grid so
                self.reservations.append([r[0] - off, r[1] - off, r[2], r[3], r[4]])
            self.reservations.sort()
        except (KeyError, TypeError, IndexError):
            pass     # a damaged file: start without it (the fallback applies)

    # --- remote commands (commands.py routes <p>/cmd/grid/<sub> here) ---------------------
    def command(self, sub, obj, now):
        """Applies one command; returns the fields its event adds, or raises ValueError."""
        import gridevent     # loaded by the first grid message
        allow = gridevent.allow
        if sub == "limits":
            if "page" in obj or "pages" in obj:
                return self.page(obj, now)
            return {"intervals": self.schedule(obj, now)}
        if sub == "reserve":
            allow(obj, ("id", "start", "duration_s", "extra_w", "max_fee_cents", "accept"))
            if "accept" in obj:
                return {"request": self.accept(obj["accept"], now)}
            return {"request": self.reserve(obj.get("start"), obj.get("duration_s"),
                                            obj.get("extra_w"), now,
                                            obj.get("max_fee_cents", 0))}
        if sub == "answer":
            allow(obj, ("id", "status", "fee_cents", "offers", "reason"))
            st = self.answer(obj, now)
            if st == "refused":        # the grant the site turned down, and why, in one line
                return {"status": st, "reason": self.answers[-1]["reason"]}
            return {"status": st}
        if sub == "emergency":
            allow(obj, ("id", "share_pct", "duration_s"))
            if "share_pct" not in obj:
                raise ValueError("share_pct is required (an int, or null to end it)")
            return {"limit_w": self.emergency(obj["share_pct"], obj.get("duration_s"), now)}
        if sub == "cancel":
            allow(obj, ("id",))
            self.cancel(obj.get("id"), now)
            return {}
        if sub == "ack":
            allow(obj, ("n", "id"))
            self.ack(obj.get("n"), obj.get("id"))
            return {}
        if sub == "time":
            allow(obj, ("id", "unix_s"))
            self.set_wall(_intv(obj, "unix_s", 1704067200, 2800000000, "s"), now)
            return {}
        if sub == "log":
            allow(obj, ("id",))
            self.replay_wanted = True
            return {}
        raise ValueError("unknown grid command %s" % sub[:24])

    # --- compliance -------------------------------------------------------------------------
    def stamp(self):
        """Unix seconds of the last pass, or "u<uptime s>" without a wall clock."""
        if self._off is None:
            return "u%d" % self._mono
        return to_unix(self._mono + self._off)

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
                "pending": len(self.pending), "notices": len(self.notices),
                "notices_lost": self.notices_lost, "emergency_w": self.emergency_w,
                "emergency_s": left,
                "answers": self.answers[-2:]}

