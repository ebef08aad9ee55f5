"""Export limit and solar surplus: soaks what the site exports into deferrable loads, ranked,
under the shed controller's import limit, its timers and its operation caps."""
# Pure ints, no I/O. The controller (shed.py) calls step() at the end of each update and
# drop() when it fails safe, so the import side has decided first: a shed, an overload or bad
# data ends every soak in that same update, and a soak only ever takes room left under the
# restore thresholds (total W and each leg's mA), as a restore would.
# Signs: the meter's total_w is net real power, negative when the site exports; leg_ma are rms
# magnitudes (no sign), so a soak's added draw is charged to the legs as if it added current,
# which is the safe side while exporting (it really lowers it).
#
# A load soaks through load.soak_w: W of surplus it may draw on top of its own demand (0: not
# soaking): a water heater's boost (or thermostat raised), an EV's "charge from solar". A
# contactor load that is off is switched on to soak; a modulated one has its setpoint raised
# by whole amps. Ending a soak clears soak_w and leaves the command to the import controller.
# A soak's start and end are operations in the load's hour ring (the same max_ops_per_h): a
# start keeps room for itself, its end and the switch off (or pause) the load may still need,
# as a restore keeps room for its shed; its start waits min_off_s since the last end, its end
# min_on_s since the start (an EV also waits its response_s between changes).

from limits import NO_LIMIT
from shed import AGE_CAP_MS
from loadkind import KIND_MODULATED, KIND_ONOFF

_SETTING = "setting"      # the installer's export_limit_w among the sources


class Soaker:
    """ctl: the shed.Controller; loads: its loads in soak order (first soaks first);
    limit_w: the installer's export limit (None: none); surplus: soak any export (solar
    charging), each start at least half covered by the export, ended once three quarters
    of the load's draw comes from the grid."""

    def __init__(self, ctl, loads, limit_w=None, surplus=False, curtail=None):
        clock = ctl.clock
        now = clock.ticks_ms()
        for load in loads:
            if load not in ctl.loads or load.kind not in (KIND_ONOFF, KIND_MODULATED):
                raise ValueError("error: %s cannot soak (not a controlled load)" % load.name)
            load._soak_ms = clock.ticks_add(now, -AGE_CAP_MS)
        self.ctl = ctl
        self.loads = loads
        self.surplus = surplus
        self._lims = {}
        if limit_w is not None:
            self.set_limit(_SETTING, limit_w)
        self._limit()
        self.export_w = 0        # what the site exports now, W (0 when importing)
        self.excess_w = 0        # ... over the export limit in force
        self.curtail = curtail   # curtail.Curtail of a source (an inverter), or None
        self._soak_excess_w = 0  # excess_w plus what the source's cap holds back
        ctl.soaker = self

    def set_limit(self, name, w):
        """An export limit (the grid's envelope, the installer's): the lowest wins."""
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 500000:
            raise ValueError("error: export limit must be an int in 0..500000 W, got %r" % (w,))
        self._lims[name] = w
        self._limit()

    def clear_limit(self, name):
        self._lims.pop(name, None)
        self._limit()

    def _limit(self):
        w = NO_LIMIT
        for name in self._lims:
            if self._lims[name] < w:
                w = self._lims[name]
        self.limit_w = None if w >= NO_LIMIT else w

    def report(self):
        """The export side of the status snapshot (snapshot.py; docs/mqtt.md)."""
        soaking = []
        soak_w = 0
        for load in self.loads:
            if load.soak_w:
                soaking.append(load.name)
                soak_w += load.soak_w
        r = {"limit_w": self.limit_w, "limits": dict(self._lims),
             "surplus": self.surplus, "export_w": self.export_w,
             "excess_w": self.excess_w, "soak_w": soak_w, "soaking": soaking}
        cur = self.curtail
        if cur is not None:
            # The inverter: its cap (its rating: none) and what it reports it delivers.
            src = cur.source
            r["pv_cap_w"] = src.cap_w
            r["pv_w"] = src.output_w if src.output_w >= 0 else None
        return r

    def drop(self, now):
        """Ends every soak at once: fail-safe, shed or overload (the end is an operation)."""
        for load in self.loads:
            if load.soak_w:
                self._end(load, now)

    def _end(self, load, now):
        load.soak_w = 0
        load._soak_ms = now
        self.ctl._record_op(load, now)

    def step(self, now):
        ctl = self.ctl
        cur = self.curtail
        if ctl.state in ("shedding", "overload", "failsafe"):
            self.drop(now)
            if cur is not None:
                cur.release(now)
            return
        p = ctl._p_w                 # projected net W after this update's commands
        lim = self.limit_w
        self.export_w = -p if p < 0 else 0
        self.excess_w = -p - lim if lim is not None and -p > lim else 0
        self._soak_excess_w = self.excess_w
        if cur is not None and lim is not None:
            self._soak_excess_w += cur.held_w()
        self._soak(now, p, lim)
        if cur is not None:
            # What soaking could not take this update (a soak started has changed the
            # projection): the source gives it up.
            cur.step(now, ctl._p_w, lim, ctl)

    def _soak(self, now, p, lim):
        ctl = self.ctl
        clock = ctl.clock
        for load in self.loads:
            if clock.ticks_diff(now, load._soak_ms) > AGE_CAP_MS:
                load._soak_ms = clock.ticks_add(now, -AGE_CAP_MS)   # ticks_diff never wraps
            s = load.soak_w
            if s:
                if load.uncontrollable:
                    load.soak_w = 0
                    continue
                cmd = load.command_w()
                if s > cmd:
                    # Turned down by the import controller: the soak shrinks with it.
                    s = load.soak_w = cmd
                    if not s:
                        self._end(load, now)
                        continue
        if ctl._recovering or ctl.state in ("restoring", "reclaiming"):
            return       # the import side raised a load, or one waits for room: not this update
        # One change per update: raise (or start) the first load that can take the excess,
        # else end the last one the grid is paying for.
        if self._soak_excess_w > 0 or (self.surplus and p < 0):
            for load in self.loads:
                if self._raise(load, now, p, lim, clock):
                    return
        elif p > 0:
            i = len(self.loads)
            while i:
                i -= 1
                load = self.loads[i]
                if load.soak_w and self._lower(load, now, p, lim, clock):
                    return

    def _room(self, load, inc_w):
        """inc_w fits under the restore thresholds, in W and on each leg the load sits on."""
        ctl = self.ctl
        if inc_w > ctl._restore_w - ctl._p_w:
            return False
        ma = inc_w * 1000 // load.volts
        return (not load.on_l1 or ma <= ctl._restore_ma - ctl._p1) and \
            (not load.on_l2 or ma <= ctl._restore_ma - ctl._p2)

    def _raise(self, load, now, p, lim, clock):
        if load.uncontrollable:
            return False
        ctl = self.ctl
        s = load.soak_w
        draw = load._proj_w if load._proj_w > 0 else 0
        exp = -p
        if load.kind == KIND_ONOFF:
            if s:
                return False         # soaking already, at its rating
            if clock.ticks_diff(now, load._soak_ms) < load.min_off_ms:
                return False
            ctl._drop_old_ops(load, now)
            if load._ops_n + 3 > load.max_ops_per_h:
                return False
            inc = load.rated_w - draw
            # Over a grid limit any excess starts it; surplus alone only if the export
            # covers half of what it adds.
            if not (self._soak_excess_w > 0 or inc <= 2 * exp) or not self._room(load, inc):
                return False
            if not load.on:
                if not ctl._may_switch_on(load, now):
                    return False
                ctl._command(load, now, True, 0)     # the switch is the soak's operation
            else:
                ctl._record_op(load, now)
            load.soak_w = load.rated_w
            load._soak_ms = now
            return True
        # Modulated: whole amps, once its last change has been answered.
        v = load.volts
        if clock.ticks_diff(now, load._changed_ms) < load.response_ms or \
                clock.ticks_diff(now, load._soak_ms) < load.response_ms:
            return False
        a = s // v
        if a >= load.max_a:
            return False
        if self._soak_excess_w > 0:
            add = (self._soak_excess_w + v - 1) // v
        else:
            add = exp // v
        if not s:
            if clock.ticks_diff(now, load._soak_ms) < load.min_off_ms:
                return False
            ctl._drop_old_ops(load, now)
            if load._ops_n + 3 > load.max_ops_per_h:
                return False
            if add < load._on_a:
                if self._soak_excess_w <= 0:
                    return False     # surplus below its floor: it would run on the grid
                add = load._on_a
        a += add
        if a > load.max_a:
            a = load.max_a
        sp = load.setpoint_a
        if a > sp:
            # The draw it adds beyond what it draws now must fit; else as many amps as do.
            room = ctl._restore_w - ctl._p_w + draw
            if load.on_l1 and (ctl._restore_ma - ctl._p1) * v // 1000 + draw < room:
                room = (ctl._restore_ma - ctl._p1) * v // 1000 + draw
            if load.on_l2 and (ctl._restore_ma - ctl._p2) * v // 1000 + draw < room:
                room = (ctl._restore_ma - ctl._p2) * v // 1000 + draw
            if room // v < a:
                a = room // v
            if a < load._on_a or a <= s // v:
                return False
            if a > sp:
                if sp == 0 and not ctl._may_switch_on(load, now):
                    return False
                ctl._command(load, now, True, a)
        if not s and sp:
            ctl._record_op(load, now)
        load.soak_w = a * v
        load._soak_ms = now
        return True

    def _lower(self, load, now, p, lim, clock):
        draw = load._proj_w if load._proj_w > 0 else 0
        if load.kind != KIND_ONOFF:
            # Modulated: as many whole amps as the import, down to its floor.
            v = load.volts
            if clock.ticks_diff(now, load._soak_ms) < load.response_ms:
                return False
            a = load.soak_w // v - (p + v - 1) // v
            if a >= load._on_a:
                load.soak_w = a * v
                load._soak_ms = now
                return True
        if lim is not None and draw - p > lim:
            return False             # without it the export would pass the grid's limit
        if self.surplus and p * 4 <= draw * 3:
            return False             # a quarter of it or more is still surplus
        if clock.ticks_diff(now, load._soak_ms) < load.min_on_ms:
            return False
        self._end(load, now)
        return True
