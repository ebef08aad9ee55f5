"""Priority load shedding: keeps the panel under its limit by shedding and modulating loads."""
# Pure logic: no machine, no I/O. Time comes from an injected clock with ticks_ms(),
# ticks_diff(a, b) and ticks_add(t, d) (the `time` module itself qualifies). Powers are int W,
# leg currents int mA, times int ms, so nothing here depends on single-precision floats.
#
# Rules, in the order the controller applies them on every update():
#  1. A measurement that is invalid or older than stale_ms sheds every sheddable load and
#     takes modulated loads to their floor (or pause when they have none).
#  2. Above a shed threshold (total W or either leg's mA): shed or modulate down from the
#     lowest priority upward, as many loads as needed in this one step (fast down).
#  3. Below the restore threshold, after a settle time: restore or ramp up one load, the
#     highest priority first, only if its expected draw fits (slow up). A higher-priority
#     load that does not fit may take room from lower-priority ones.
#  4. Minimum on/off times, an EV resume pause and a cap on operations per hour stop
#     chattering; only a sustained overload with nothing else left to shed overrides min_on.
#
# Over 500 lines because the shed pass, the restore step and the reclaim share the projected
# power (_p_w, _p1, _p2) they change command by command: apart, each would read the others'
# fields. Its set-up (checks, derived constants) is in shedsetup.py, the limits in limits.py.

from micropython import const

from limits import NO_LIMIT
from loadkind import KIND_MODULATED, KIND_NAMES, KIND_NEVER, KIND_ONOFF

AGE_CAP_MS = const(0x10000000)  # older timestamps are pulled forward so ticks_diff never wraps
_HOUR_MS = const(3600000)
_HOUSEKEEP_MS = const(60000)


class Load:
    """One load on the priority list. priority: 1 is the most important (shed last)."""

    def __init__(self, name, kind, priority, leg, rated_w, volts=240, min_on_s=60, min_off_s=60,
                 max_ops_per_h=12, min_a=6, max_a=32, ramp_step_a=2, resume_pause_s=300,
                 response_s=None):
        # The checks and the fields: shedsetup.init_load, imported to build and dropped by
        # the app after, so this code is not in RAM while the controller runs.
        import shedsetup
        shedsetup.init_load(self, name, kind, priority, leg, rated_w, volts, min_on_s, min_off_s,
                            max_ops_per_h, min_a, max_a, ramp_step_a, resume_pause_s, response_s)

    def command_w(self):
        """Most this load may draw under its current command."""
        if self.kind == KIND_MODULATED:
            w = self.setpoint_a * self.volts
            return w if w < self.rated_w else self.rated_w
        return self.rated_w if self.on else 0

    def __repr__(self):
        return "Load(%s %s p%d %s %dW on=%s sp=%dA)" % (self.name, KIND_NAMES[self.kind], self.priority,
                                                   self.leg, self.rated_w, self.on, self.setpoint_a)


class Measurement:
    """What the app hands update(): reuse one instance, no allocation per sample."""

    def __init__(self):
        self.valid = False
        self.t_ms = 0
        self.total_w = 0
        self.leg_ma = [0, 0]


class Controller:
    """Decides, on each update(meas), which loads run and at what setpoint."""

    def __init__(self, loads, limits, clock, stale_ms=5000, settle_s=10, stagger_s=15):
        # The checks and the fields: shedsetup.init_controller, imported to build and dropped by
        # the app after, so this code is not in RAM while the controller runs.
        import shedsetup
        shedsetup.init_controller(self, loads, limits, clock, stale_ms, settle_s, stagger_s)
        # Every load may switch at once: its last change counts as long ago. (Here, not in
        # shedsetup, so that shedsetup never imports shed: no cycle.)
        long_ago = clock.ticks_add(self.now_ms, -AGE_CAP_MS)
        for load in self._ctl:
            load.switched_ms = long_ago
            load._changed_ms = long_ago

    def set_uncontrollable(self, load, flag):
        """A load the board cannot switch (welded contactor, charger that stopped answering)
        leaves the shed and restore order, and its rated draw counts as drawn, so the other
        loads are shed to keep room for it. Cleared, it comes back off and waits its
        min_off time like any shed load."""
        if load.uncontrollable == flag or load.kind == KIND_NEVER:
            return
        load.uncontrollable = flag
        now = self.clock.ticks_ms()
        # Commanded off either way: nothing is asked of it while stuck, and it restarts shed.
        load.on = False
        load.setpoint_a = 0
        load._cmd_w = load._prev_cmd_w = load._proj_w = load._act_w = 0
        load.switched_ms = load._changed_ms = now
        if flag:
            self._ctl.remove(load)
            self._shed_order.remove(load)
            self._stuck.append(load)
        else:
            self._stuck.remove(load)
            self._ctl = sorted(self._ctl + [load], key=lambda l: l.priority)
            self._shed_order = list(reversed(self._ctl))
            # Back in the order inside its response window: the restore step's shortcut for
            # "no command pending, so no load in its window" waits until it has passed.
            until = self.clock.ticks_add(now, load.response_ms)
            win = self._window_until
            if win is None or self.clock.ticks_diff(until, win) > 0:
                self._window_until = until
        self._next_up_ms = now

    # --- the update ------------------------------------------------------------------
    # Telemetry it leaves: limit_w, shed_w, restore_w (W), limit_ma, shed_ma, restore_ma (mA
    # per leg), None where nothing limits; projected_w, headroom_w, state.
    def update(self, meas):
        clock = self.clock
        now = clock.ticks_ms()
        self.now_ms = now
        if clock.ticks_diff(now, self._housekeep_ms) >= _HOUSEKEEP_MS:
            self._housekeep(now)
        if not meas.valid or clock.ticks_diff(now, meas.t_ms) > self.stale_ms:
            self._enter_failsafe(now)
            return
        if self._failsafe:
            # Valid data again: loads come back one at a time, stagger_s apart.
            self._failsafe = False
            self._recovering = True
            self._next_up_ms = clock.ticks_add(now, self.stagger_ms)
        lim = self.limits
        if lim.version != self._lim_version or (
                lim.next_expiry_ms is not None and clock.ticks_diff(now, lim.next_expiry_ms) >= 0):
            self._thresholds(now)
        p_w = meas.total_w
        leg_ma = meas.leg_ma
        p1 = leg_ma[0]
        p2 = leg_ma[1]
        pending = clock.ticks_diff(now, self._pending_until) < 0
        if pending:
            # A command is still on its way to a load: project its effect.
            self._estimate_all(now)
            for load in self._ctl:
                d = load._proj_w - load._act_w
                if d:
                    p_w += d
                    d_ma = d * 1000 // load.volts
                    if load.on_l1:
                        p1 += d_ma
                    if load.on_l2:
                        p2 += d_ma
        for load in self._stuck:
            # Reserve what it may draw at most beyond what it draws now.
            m = load.measured_w
            d = load.rated_w - (m if m > 0 else 0)
            if d > 0:
                p_w += d
                d_ma = d * 1000 // load.volts
                if load.on_l1:
                    p1 += d_ma
                if load.on_l2:
                    p2 += d_ma
        self._p_w = p_w
        self._p1 = p1
        self._p2 = p2
        shed_ma = self._shed_ma
        restore_w = self._restore_w
        restore_ma = self._restore_ma
        if p_w > self._shed_w or p1 > shed_ma or p2 > shed_ma:
            if not pending:
                self._estimate_all(now)
            self._shed_pass(now, False, None, self._shed_w, self._shed_ma,
                            self._restore_w, self._restore_ma)
            if self._over(self._shed_w, self._shed_ma):
                self._shed_pass(now, True, None, self._shed_w, self._shed_ma,
                                self._restore_w, self._restore_ma)
            self.state = "overload" if self._over(self._shed_w, self._shed_ma) else "shedding"
            self._recovering = False
            self._room_since_ms = None
            self._next_up_ms = clock.ticks_add(now, self.settle_ms)
        elif p_w < restore_w and p1 < restore_ma and p2 < restore_ma:
            if clock.ticks_diff(now, self._next_up_ms) >= 0:
                self._restore_step(now, pending)     # it estimates the loads unless pending did
            else:
                self.state = "recovering" if self._recovering else "ok"
        else:
            self.state = "holding"
            self._room_since_ms = None
        if self.soaker is not None:
            self.soaker.step(now)    # export.py: after the import side, within its room
        p_w = self._p_w
        self.headroom_w = restore_w - p_w
        self.projected_w = p_w

    def _over(self, tgt_w, tgt_ma):
        return self._p_w > tgt_w or self._p1 > tgt_ma or self._p2 > tgt_ma

    def _thresholds(self, now):
        w, ma = self.limits.effective(now)
        self._lim_version = self.limits.version
        band = self.limits.band_pct
        self._shed_w = w
        self._shed_ma = ma
        self._restore_w = w if w >= NO_LIMIT else w * (100 - band) // 100
        self._restore_ma = ma if ma >= NO_LIMIT else ma * (100 - band) // 100
        self.limit_w = self.shed_w = None if w >= NO_LIMIT else w
        # What set limit_w as planned at this step: a lower step met in advance is named
        # from the lead's start, not from the boundary.
        self.limit_source = self.limits.source_w
        self.restore_w = None if w >= NO_LIMIT else self._restore_w
        self.limit_ma = self.shed_ma = None if ma >= NO_LIMIT else ma
        self.restore_ma = None if ma >= NO_LIMIT else self._restore_ma

    def _estimate_all(self, now):
        """Set each load's _act_w (draw now) and _proj_w (draw once its command took effect)."""
        clock = self.clock      # clock.ticks_diff(...), not a local: a bound method allocates
        for load in self._ctl:
            cmd = load._cmd_w
            in_window = clock.ticks_diff(now, load._changed_ms) < load.response_ms
            m = load.measured_w
            if m < 0:
                act = load._prev_cmd_w if in_window else cmd
            else:
                act = m
            load._act_w = act
            if not in_window:
                load._proj_w = act
            elif load._up:
                load._proj_w = cmd if cmd > act else act
            else:
                load._proj_w = cmd if cmd < act else act

    # --- commands --------------------------------------------------------------------
    def _record_op(self, load, now):
        # An operation in the hour's ring: a switch (_command), or a soak's start or end
        # (export.py), which the same max_ops_per_h caps.
        ring = load._ops_t
        n = len(ring)
        if load._ops_n < n:
            ring[(load._ops_head + load._ops_n) % n] = now
            load._ops_n += 1
        else:   # full: a shed beyond the cap; keep the newest times
            ring[load._ops_head] = now
            load._ops_head = (load._ops_head + 1) % n

    def _command(self, load, now, on, setpoint_a):
        """Change a load's command; account the projected change of power."""
        was_on = load.on
        old_w = load._cmd_w
        if load.kind == KIND_MODULATED:
            on = setpoint_a > 0
            if on and was_on and setpoint_a != load.setpoint_a:
                load.adjust_ops += 1
            load.setpoint_a = setpoint_a
        load.on = on
        if on != was_on:
            load.switch_ops += 1
            load.switched_ms = now
            self._record_op(load, now)
        new_w = load.command_w()
        load._prev_cmd_w = load._act_w
        load._cmd_w = new_w
        load._up = new_w > old_w
        load._changed_ms = now
        # Projected draw: down to the command at once; up to the command as expected.
        old_proj = load._proj_w
        if load._up:
            proj = new_w if new_w > old_proj else old_proj
        else:
            proj = new_w if new_w < old_proj else old_proj
        load._proj_w = proj
        d = proj - old_proj
        if d:
            self._p_w += d
            d_ma = d * 1000 // load.volts
            if load.on_l1:
                self._p1 += d_ma
            if load.on_l2:
                self._p2 += d_ma
        until = self.clock.ticks_add(now, self._max_response_ms)
        if self.clock.ticks_diff(until, self._pending_until) > 0:
            self._pending_until = until

    def _may_switch_off(self, load, now):
        return self.clock.ticks_diff(now, load.switched_ms) >= load.min_on_ms

    def _may_switch_on(self, load, now):
        off_ms = load.min_off_ms
        if load.kind == KIND_MODULATED and load.resume_pause_ms > off_ms:
            off_ms = load.resume_pause_ms
        if self.clock.ticks_diff(now, load.switched_ms) < off_ms:
            return False
        self._drop_old_ops(load, now)
        # Keep room in the hour for the shed that may follow this restore.
        return load._ops_n + 2 <= load.max_ops_per_h

    def _drop_old_ops(self, load, now):
        ring = load._ops_t
        n = len(ring)
        while load._ops_n and self.clock.ticks_diff(now, ring[load._ops_head]) >= _HOUR_MS:
            load._ops_head = (load._ops_head + 1) % n
            load._ops_n -= 1

    def _need(self, load, tgt_w, tgt1, tgt2):
        """Whole amps this load must give up to bring every dimension it sits on to its target."""
        v = load.volts
        a = 0
        d = self._p_w - tgt_w
        if d > 0:
            a = (d + v - 1) // v
        if load.on_l1:
            d = self._p1 - tgt1
            if d > 0:
                d = (d + 999) // 1000
                if d > a:
                    a = d
        if load.on_l2:
            d = self._p2 - tgt2
            if d > 0:
                d = (d + 999) // 1000
                if d > a:
                    a = d
        return a

    def _helps(self, load, shed_w, shed_ma):
        if self._p_w > shed_w:
            return True
        if load.on_l1 and self._p1 > shed_ma:
            return True
        return load.on_l2 and self._p2 > shed_ma

    def _shed_pass(self, now, force, stop_at, shed_w, shed_ma, mod_w, mod_ma):
        """Lowest priority first: shed on/off loads until under shed_*; modulate toward mod_*.
        force overrides min_on (only when the limit cannot be held otherwise)."""
        for load in self._shed_order:
            if load is stop_at:
                return
            if not self._over(shed_w, shed_ma):
                return
            if load._proj_w <= 0 or not self._helps(load, shed_w, shed_ma):
                continue     # not drawing: switching it off relieves nothing
            if load.kind == KIND_ONOFF:
                if not load.on:
                    continue
                if self._may_switch_off(load, now):
                    self._command(load, now, False, 0)
                elif force:
                    load.forced_ops += 1
                    self._command(load, now, False, 0)
                continue
            if load.setpoint_a <= 0:
                continue
            # Modulated: from what it draws now, give up enough amps to reach mod_*.
            v = load.volts
            cur_a = load._proj_w // v
            if cur_a > load.setpoint_a:
                cur_a = load.setpoint_a
            new_a = cur_a - self._need(load, mod_w, mod_ma, mod_ma)
            if new_a <= 0 or new_a < load.min_a:
                # Below the floor (the least it runs at: min_a, or a ramp step without one)
                # it must pause, which min_on guards. The floor is enough if it clears the
                # shed level and is a step down: a load already at its floor that still
                # draws more past its response time has had that chance.
                floor_a = load._on_a if load._on_a < load.setpoint_a else load.setpoint_a
                d = load._proj_w - floor_a * v
                d_ma = d * 1000 // v if d > 0 else 0
                ok = floor_a < load.setpoint_a and d >= 0 and self._p_w - d <= shed_w and \
                    (not load.on_l1 or self._p1 - d_ma <= shed_ma) and \
                    (not load.on_l2 or self._p2 - d_ma <= shed_ma)
                if ok or not (force or self._may_switch_off(load, now)):
                    new_a = floor_a
                else:
                    if not self._may_switch_off(load, now):
                        load.forced_ops += 1
                    new_a = 0
            if new_a < load.setpoint_a:
                self._command(load, now, new_a > 0, new_a)

    def _restore_step(self, now, estimated):
        """Raise one load, most important first, if its expected draw fits under restore_*.

        An on/off load that is on but idle (thermostat satisfied) keeps its rated draw
        reserved, so no other load takes the room its surprise start needs; a modulated load
        that draws nothing is parked at its floor for the same reason."""
        # Runs on every update while there is room or a load waits for it (since c1db77a, not
        # once per settle_s), so it is written for speed: one pass over the loads estimates
        # their draw (unless update() did) and adds up the claims; what lower-priority loads
        # could free (what _reclaim's first loop summed for every load that did not fit) is
        # summed once per update, from the bottom up; per-load constants come from shedsetup.
        # No helper is called per load (each call costs as much as the arithmetic it
        # saves): see shed_cost_vs_harness in BENCHMARKS.md.
        clock = self.clock
        # Unless pending, no command is still inside its load's response window
        # (_pending_until is the latest command plus the longest response_ms), so each load
        # draws what it is measured at; the one exception is a load lately cleared from stuck,
        # and until its window has passed _estimate_all does the estimate.
        win = self._window_until
        if win is not None:
            if clock.ticks_diff(now, win) < 0:
                if not estimated:
                    self._estimate_all(now)
                    estimated = True
            else:
                self._window_until = None
        cw = 0
        c1 = 0
        c2 = 0
        # While the loads are looked at, bound what the pass below could do: the least any
        # load under its top could add (1 A of a running modulated load, else its first step)
        # and the most the loads below the first of them could free for it.
        least_inc_w = NO_LIMIT
        could_free_w = 0
        for load in self._ctl:
            if not estimated:
                # _estimate_all outside any response window: the measured draw, or else
                # what the command allows.
                m = load.measured_w
                act = m if m >= 0 else load._cmd_w
                load._act_w = act
                load._proj_w = act
            if load.kind == KIND_ONOFF:
                if load.on:
                    if least_inc_w < NO_LIMIT:
                        could_free_w += load.rated_w if load.rated_w > load._proj_w else load._proj_w
                    if load._proj_w < load.rated_w:
                        d = load.rated_w - load._proj_w
                        cw += d
                        d = d * 1000 // load.volts
                        if load.on_l1:
                            c1 += d
                        if load.on_l2:
                            c2 += d
                elif load._on_w < least_inc_w:
                    least_inc_w = load._on_w
            else:
                if load.setpoint_a > load.min_a > 0 and load.measured_w >= 0 and \
                        load.measured_w * 2 < load._floor_w and \
                        clock.ticks_diff(now, load._changed_ms) >= load.response_ms:
                    self._command(load, now, True, load.min_a)
                sp = load.setpoint_a
                if sp > 0:
                    if least_inc_w < NO_LIMIT and load._proj_w > 0:
                        could_free_w += load._proj_w
                    if sp < load.max_a and load.volts < least_inc_w:
                        least_inc_w = load.volts
                elif load._on_w < least_inc_w:
                    least_inc_w = load._on_w
        # Room left under the restore thresholds (the commands above are in _p_*).
        room_w = self._restore_w - self._p_w - cw
        room1 = self._restore_ma - self._p1 - c1
        room2 = self._restore_ma - self._p2 - c2
        no_room = False
        ctl = self._ctl
        if room_w + could_free_w < least_inc_w and self._room_since_ms is None:
            # Nothing fits, even with all the room below freed (or all is on at its top): the
            # pass below would end as "ok" with no room, so it is skipped (the empty tuple is
            # a constant: nothing allocated). Waiting out a settle, it runs to restart it.
            ctl = ()
        summed = False               # what the loads below could free: summed once, if needed
        fw = 0
        f1 = 0
        f2 = 0
        i = -1                       # the load's index: enumerate() would allocate
        for load in ctl:
            i += 1
            if load.kind == KIND_ONOFF:
                if load.on:
                    continue
                sp = 0
            else:
                sp = load.setpoint_a
                if sp >= load.max_a:
                    continue
            if sp == 0:
                # Off: it waits its min_off time (an EV its resume pause too) and keeps room
                # in the hour's operations for the shed that may follow this restore.
                if clock.ticks_diff(now, load.switched_ms) < load._off_ms:
                    continue
                if load._ops_n and clock.ticks_diff(now, load._ops_t[load._ops_head]) >= _HOUR_MS:
                    self._drop_old_ops(load, now)
                if load._ops_n + 2 > load.max_ops_per_h:
                    continue
                inc_w = load._on_w
                inc_ma = load._on_ma
                # Fits if every dimension it sits on stays at or under its threshold.
                if inc_w <= room_w and (not load.on_l1 or inc_ma <= room1) and \
                        (not load.on_l2 or inc_ma <= room2):
                    sp = load._on_a
                    break
            else:
                # Still answering its last command (one given in this very step too, as
                # parking an idle load is), or drawing well under its setpoint (so it would
                # not use more): leave it.
                v = load.volts
                if load._changed_ms == now or \
                        clock.ticks_diff(now, load._changed_ms) < load.response_ms or \
                        0 <= load.measured_w < (sp - load.ramp_step_a) * v:
                    continue
                inc_a = load.ramp_step_a
                if sp + inc_a > load.max_a:
                    inc_a = load.max_a - sp
                inc_w = inc_a * v
                inc_ma = inc_a * 1000
                # Whole amps it could add and stay under every threshold it sits on.
                room_a = room_w // v
                if load.on_l1 and room1 // 1000 < room_a:
                    room_a = room1 // 1000
                if load.on_l2 and room2 // 1000 < room_a:
                    room_a = room2 // 1000
                if room_a > 0:
                    sp += inc_a if inc_a < room_a else room_a
                    break
            no_room = True
            # Does not fit: take room from lower-priority loads if what they could free is
            # enough (the projected power less it, under the thresholds less the claims and
            # this step, in every dimension).
            if summed:
                fw = load._free_w    # kept for it when the loads below were summed
                f1 = load._free1
                f2 = load._free2
            else:
                # The first load this update that does not fit: sum what the loads below it
                # could free, bottom up, each keeping the sum of those below itself.
                summed = True
                j = len(ctl) - 1
                while j > i:
                    low = ctl[j]
                    j -= 1
                    low._free_w = fw
                    low._free1 = f1
                    low._free2 = f2
                    # Running and past its min_on time: what it draws (a contactor its rating,
                    # the room reserved for it included); a modulated load down to its floor.
                    if low.kind == KIND_ONOFF:
                        if not low.on or clock.ticks_diff(now, low.switched_ms) < low.min_on_ms:
                            continue
                        w = low.rated_w if low.rated_w > low._proj_w else low._proj_w
                    else:
                        w = low._proj_w
                        if low.setpoint_a <= 0 or w <= 0:
                            continue
                        if clock.ticks_diff(now, low.switched_ms) < low.min_on_ms:
                            # Held at the least it runs at (_reclaim), never paused: already
                            # there, a command frees nothing, whatever it draws.
                            if low.setpoint_a <= low._on_a:
                                continue
                            w -= low._on_a * low.volts
                            if w <= 0:
                                continue
                    fw += w
                    w = w * 1000 // low.volts
                    if low.on_l1:
                        f1 += w
                    if low.on_l2:
                        f2 += w
            if fw > 0 and inc_w <= room_w + fw and (inc_ma if load.on_l1 else 0) <= room1 + f1 \
                    and (inc_ma if load.on_l2 else 0) <= room2 + f2:
                self._reclaim(now, i, self._restore_w - cw - inc_w,
                              self._restore_ma - c1 - (inc_ma if load.on_l1 else 0),
                              self._restore_ma - c2 - (inc_ma if load.on_l2 else 0))
                self.state = "reclaiming"
                self._next_up_ms = clock.ticks_add(now, self.settle_ms)
                return
        else:
            # Nothing to raise (or no room for it): look again at the next update, and count
            # the settle time from when room appears.
            self._recovering = False
            self.state = "ok"
            if no_room:
                self._room_since_ms = None
            self._next_up_ms = now
            return
        # It fits: raise it to sp once the room has lasted settle_s.
        since = self._room_since_ms
        if since is None:
            self._room_since_ms = since = now
        if clock.ticks_diff(now, since) < self.settle_ms:
            self.state = "settling"
            return
        self._command(load, now, True, sp)
        if self._recovering:
            self.state = "recovering"
            self._next_up_ms = clock.ticks_add(now, self.stagger_ms)
        else:
            self.state = "restoring"
            self._next_up_ms = clock.ticks_add(now, self.settle_ms)

    def _reclaim(self, now, index, tgt_w, tgt1, tgt2):
        """Switch off or turn down lower-priority loads (their timers respected) to make room
        for load's next step; an idle load's reserved room counts as freed. tgt_*: what the
        projected power must come down to (the restore thresholds less the claims and the
        step). _restore_step calls it once it has found that what they could free is enough."""
        ctl = self._ctl
        n = len(ctl)
        for j in range(n - 1, index, -1):
            low = ctl[j]
            if self._p_w <= tgt_w and self._p1 <= tgt1 and self._p2 <= tgt2:
                break
            if low.kind == KIND_ONOFF:
                if not low.on or not self._may_switch_off(low, now):
                    continue
                claim = low.rated_w - low._proj_w
                if claim > 0:
                    # Its reserved room is freed too: fold it into the targets.
                    c_ma = claim * 1000 // low.volts
                    tgt_w += claim
                    if low.on_l1:
                        tgt1 += c_ma
                    if low.on_l2:
                        tgt2 += c_ma
                self._command(low, now, False, 0)
                continue
            if low.setpoint_a <= 0 or low._proj_w <= 0:
                continue
            cur_a = low._proj_w // low.volts
            if cur_a > low.setpoint_a:
                cur_a = low.setpoint_a
            new_a = cur_a - self._need(low, tgt_w, tgt1, tgt2)
            if new_a <= 0 or new_a < low.min_a:
                # Pausing is switching off: min_on holds it at its floor until then.
                new_a = 0 if self._may_switch_off(low, now) else \
                    low._on_a if low._on_a < low.setpoint_a else low.setpoint_a
            if new_a < low.setpoint_a:
                self._command(low, now, new_a > 0, new_a)

    # --- failsafe and housekeeping ---------------------------------------------------
    def _enter_failsafe(self, now):
        if not self._failsafe:
            self._failsafe = True
            self.failsafe_count += 1
        self._recovering = False
        self.state = "failsafe"
        self.headroom_w = 0
        if self.soaker is not None:
            self.soaker.drop(now)
        for load in self._ctl:
            load._act_w = load._cmd_w
            load._proj_w = load._cmd_w
            if load.kind == KIND_ONOFF:
                if load.on:
                    if not self._may_switch_off(load, now):
                        load.forced_ops += 1
                    self._command(load, now, False, 0)
            elif load.setpoint_a > load.min_a or (load.setpoint_a > 0 and load.min_a == 0):
                self._command(load, now, load.min_a > 0, load.min_a)

    def _housekeep(self, now):
        """Pull old timestamps forward so ticks_diff never wraps; forget ops older than an hour."""
        clock = self.clock
        self._housekeep_ms = now
        floor = clock.ticks_add(now, -AGE_CAP_MS)
        for load in self._ctl:
            self._drop_old_ops(load, now)
            if clock.ticks_diff(now, load.switched_ms) > AGE_CAP_MS:
                load.switched_ms = floor
            if clock.ticks_diff(now, load._changed_ms) > AGE_CAP_MS:
                load._changed_ms = floor
        if clock.ticks_diff(now, self._pending_until) > AGE_CAP_MS:
            self._pending_until = floor
        if clock.ticks_diff(now, self._next_up_ms) > AGE_CAP_MS:
            self._next_up_ms = floor
        if self._window_until is not None and clock.ticks_diff(now, self._window_until) >= 0:
            self._window_until = None
