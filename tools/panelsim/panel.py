"""The panel behind the simulated board: mains, household base load, water heater and EV."""

# Units: power in mW, currents in mA RMS, temperatures in mK; all ints. Floats are used only
# for the power factors' unit phasors, once, in the constructor.
#
# Small ints only, per step: on a 32-bit port (the ESP32's word size) an int of 2**30 or more
# lives on the heap, and the simulator shares the heap with the firmware. So time is whole
# days plus ms within the day (a run's ms pass 2**30 after 12.4 days), and energy is kept as
# Wh + J (0..3599) + uJ (0..999999), or J + uJ for the bounded EV need and tank deficit: one
# second of 7.6 kW is already 7.6e9 uJ. The arithmetic on them is exact (results as with one
# wide int) and stays under 2**30 while every power is under 1 MW (energy of a step) and
# 100 kW (the time a load takes to fill a need, a tank's draw); past that it is still exact,
# in heap ints.
#
# Phasors: every load current is a sinusoid at the mains frequency. Component k's current on
# its own leg is ma[k] * (unit_re[k] + j*unit_im[k]) / 2**14 in mA RMS, referenced to the
# voltage of that leg (unit_im < 0: lagging). On a split-phase service L2's voltage is -V(L1),
# so a current referenced to L2 is the negative of the same phasor referenced to L1. A
# 240 V load's current flows out on L1 and back on L2: on a CT clamped for import on L2 it reads
# in phase with V(L2), like an L2 load. ma[k] may be negative (a base load exporting power).

import math
from array import array
from micropython import const

BASE_L1 = const(0)      # indexes into Panel.ma, unit_re, unit_im, legs
BASE_L2 = const(1)
WATER_HEATER = const(2)
EV = const(3)
N_COMPONENTS = const(4)

_Q14 = const(16384)
_DAY_MS = const(86400000)
_DAY_S = const(86400)
_HOUR_MS = const(3600000)
_SEG_MS = const(60000)          # longest step of the tank model (its losses vary slowly)
_SEG_DRAW_MS = const(1000)      # ... while hot water is drawn (extraction follows tank temp)
_MAX_PENDING = const(16)        # pilot changes the vehicle has yet to act on
_WATER_J_PER_L_K = const(4186)
_MAX_OUTPUTS = const(8)
_UJ_PER_J = const(1000000)
_J_PER_WH = const(3600)

# Panel._e: energies. Totals as Wh, J (0..3599), uJ (0..999999); the EV's need and the tank's
# deficit as J, uJ (0..999999): both stay far below 2**30 J (298 kWh).
_E_BASE = const(0)
_E_EV = const(3)
_E_WH = const(6)
_E_L1 = const(9)
_E_DRAWN = const(12)            # heat taken from the tank by hot water draws
_E_LOSS = const(15)             # heat lost through the tank's insulation
_E_NEED = const(18)
_E_DEFICIT = const(20)
_E_SLOTS = const(22)
# Panel._de: one step's energies, J and uJ (0..999999) each.
_D_BASE = const(0)
_D_EV = const(2)
_D_WH = const(4)
_D_DRAW = const(6)
_D_LOSS = const(8)
_D_L1 = const(10)
_D_SLOTS = const(12)


def _permille(x, name, lo, hi):
    v = int(x * 1000 + 0.5)
    if not lo <= v <= hi:
        raise ValueError("%s must be in %g..%g, got %r" % (name, lo / 1000, hi / 1000, x))
    return v


def _unit(pf_pm):
    """Unit phasor of a lagging current with power factor pf_pm/1000, Q14."""
    phi = math.acos(pf_pm / 1000)
    return int(math.cos(phi) * _Q14 + 0.5), -int(math.sin(phi) * _Q14 + 0.5)


def _energy(out, i, mw, s, ms):
    """out[i], out[i + 1] = the J and uJ (0..999999) that mw mW make in s s + ms ms."""
    if not mw:
        out[i] = 0
        out[i + 1] = 0
        return
    # mw = 1000 w + r, so mw * (1000 s + ms) uJ = w*s J + (w*ms + r*s) mJ + r*ms uJ: every
    # product is under 2**30 for |mw| < 10**9 (1 MW), s <= 60 and ms <= 999
    w = mw // 1000              # floored: r is 0..999 for a negative (exported) power too
    r = mw - w * 1000
    m = w * ms + r * s
    mj = m // 1000
    u = (m - mj * 1000) * 1000 + r * ms
    j = w * s + mj
    if u >= _UJ_PER_J:
        u -= _UJ_PER_J
        j += 1
    out[i] = j
    out[i + 1] = u


def _part(out, i, j, u, pm):
    """out[i], out[i + 1] = floor((j J + u uJ) * pm / 1000) as J, uJ; 0 <= pm <= 1000."""
    # j = 1000 jk + jr; jk*pm < 2**30 for |j| < 10**9 J (a step of 1 MW is 6e7 J)
    jk = j // 1000
    x = (j - jk * 1000) * pm
    xj = x // 1000
    u = (x - xj * 1000) * 1000 + u * pm // 1000
    j = jk * pm + xj
    if u >= _UJ_PER_J:
        u -= _UJ_PER_J
        j += 1
    out[i] = j
    out[i + 1] = u


def _add_total(e, i, d, k):
    """e[i], e[i + 1], e[i + 2] (Wh, J 0..3599, uJ) += d[k] J + d[k + 1] uJ."""
    u = e[i + 2] + d[k + 1]
    j = e[i + 1] + d[k]
    if u >= _UJ_PER_J:
        u -= _UJ_PER_J
        j += 1
    if not 0 <= j < _J_PER_WH:
        wh = j // _J_PER_WH
        e[i] += wh
        j -= wh * _J_PER_WH
    e[i + 1] = j
    e[i + 2] = u


def _add_j(e, i, j, u):
    """e[i], e[i + 1] (J, uJ 0..999999) += j J + u uJ (u of either sign)."""
    u += e[i + 1]
    j += e[i]
    if not 0 <= u < _UJ_PER_J:
        k = u // _UJ_PER_J
        j += k
        u -= k * _UJ_PER_J
    e[i] = j
    e[i + 1] = u


def _total_uj(e, i):
    return (e[i] * _J_PER_WH + e[i + 1]) * _UJ_PER_J + e[i + 2]     # a heap int: for readers


def _div(hi, lo, scale, p):
    """floor((hi * scale + lo) / p): scale a power of 10, 0 <= lo < scale, 0 < p < 10**8.

    Long division one decimal digit at a time: no intermediate exceeds 10 * p (or the
    quotient), where hi * scale would pass 2**30."""
    q = hi // p
    r = hi - q * p
    scale //= 10
    while scale:
        digit = lo // scale
        lo -= digit * scale
        r = r * 10 + digit
        qd = r // p
        q = q * 10 + qd
        r -= qd * p
        scale //= 10
    return q


def _ms_to_make(j, u, mw):
    """ceil((j J + u uJ) / mw mW) in ms, mw > 0: <= 0 when there is nothing to make, and
    _SEG_MS when it takes that long or longer (no step goes further)."""
    if j < 0 or (j == 0 and u == 0):
        return 0
    if j >= (3 * mw + 49) // 50:        # j J >= 60 s x mw mW (3 mw < 2**30: mw < 358 kW)
        return _SEG_MS
    # now j < mw; ceil(x / mw) = floor((x - 1) / mw) + 1 for x > 0
    if u:
        u -= 1
    else:
        j -= 1
        u = _UJ_PER_J - 1
    return _div(j, u, _UJ_PER_J, mw) + 1


def params_with(params, ev=None, water_heater=None):
    """A copy of a board's PANEL with some of the EV's and the water heater's settings
    changed (a test's scene): ev and water_heater are dicts of overrides."""
    out = dict(params)
    for key, over in (("ev", ev), ("water_heater", water_heater)):
        if over:
            d = dict(out[key])
            d.update(over)
            out[key] = d
    return out


class Panel:
    """State of the panel; advance_to(t_ms) integrates it, set_*() are the firmware's outputs.

    Call advance_to(now) before set_contactor()/set_pilot_amps(): a command takes effect at
    the panel's current time t_ms.
    """

    def __init__(self, params, profile):
        self.params = params
        self.profile = profile
        self.volts = int(params["volts"])
        self.hz = int(params["hz"])
        self.split_phase = bool(params.get("split_phase", True))
        if not (self.volts > 0 and self.hz in (50, 60)):
            raise ValueError("volts must be > 0 and hz 50 or 60")
        self.base_pf_pm = _permille(params.get("base_pf", 1.0), "base_pf", 100, 1000)
        share = params.get("base_l1_share", 0.5) if self.split_phase else 1.0
        self.base_l1_share_pm = _permille(share, "base_l1_share", 0, 1000)

        wh = params["water_heater"]
        ev = params["ev"]
        self.legs = ("L1", "L2", self._legs(wh.get("legs", "L1L2")),
                     self._legs(ev.get("legs", "L1L2")))
        # what part of each component's energy flows on L1, per mille
        self._l1_pm = tuple(1000 if legs == "L1" else (500 if legs == "L1L2" else 0)
                            for legs in self.legs)
        self.unit_re = array("i", (0, 0, 0, 0))
        self.unit_im = array("i", (0, 0, 0, 0))
        self.unit_re[BASE_L1], self.unit_im[BASE_L1] = _unit(self.base_pf_pm)
        self.unit_re[BASE_L2], self.unit_im[BASE_L2] = _unit(self.base_pf_pm)
        self.unit_re[WATER_HEATER] = _Q14       # resistive
        self.ev_pf_pm = _permille(ev.get("pf", 1.0), "ev pf", 500, 1000)
        self.unit_re[EV], self.unit_im[EV] = _unit(self.ev_pf_pm)
        self.ma = array("i", (0, 0, 0, 0))      # current of each component, mA RMS
        self.wh_cts = wh.get("ct")
        self.ev_ct = ev.get("ct")
        self._e = array("i", bytes(4 * _E_SLOTS))
        self._de = array("i", bytes(4 * _D_SLOTS))

        # Contactors: what the coil is told, and contacts welded shut by a fault.
        self._coil = bytearray(_MAX_OUTPUTS)
        self._welded = bytearray(_MAX_OUTPUTS)

        # Water heater: element behind a contactor, in a fully mixed tank. The tank's state
        # is its heat deficit below the setpoint; a thermostat calls for heat at
        # setpoint - deadband and stops at the setpoint. Heat it could not take while its
        # contactor was open stays in the deficit and is taken when the contactor closes.
        self.wh_output = int(wh["output"])
        self.wh_volts = self._load_volts(wh)
        self.wh_rated_mw = int(wh["watts"]) * 1000
        self.tank_j_per_k = int(wh.get("tank_l", 190)) * _WATER_J_PER_L_K
        self.setpoint_mk = int(wh.get("setpoint_c", 60) * 1000)
        self.inlet_mk = int(wh.get("inlet_c", 12) * 1000)
        self.ambient_mk = int(wh.get("ambient_c", 20) * 1000)
        self.loss_mw_per_k = int(wh.get("loss_w_per_k", 2) * 1000)
        self.deadband_uj = int(wh.get("deadband_c", 5) * 1000) * self.tank_j_per_k * 1000
        self.max_deficit_uj = (self.setpoint_mk - self.inlet_mk) * self.tank_j_per_k * 1000
        if self.max_deficit_uj <= self.deadband_uj:
            raise ValueError("water heater: setpoint_c - inlet_c must exceed deadband_c")
        self._deadband_j = self.deadband_uj // _UJ_PER_J
        self._deadband_uj = self.deadband_uj % _UJ_PER_J
        self._max_deficit_j = self.max_deficit_uj // _UJ_PER_J
        self._max_deficit_uj = self.max_deficit_uj % _UJ_PER_J
        deficit_uj = (self.setpoint_mk - int(wh.get("start_c", 60) * 1000)) \
            * self.tank_j_per_k * 1000
        self._e[_E_DEFICIT] = deficit_uj // _UJ_PER_J
        self._e[_E_DEFICIT + 1] = deficit_uj % _UJ_PER_J
        self.wh_calling = deficit_uj >= self.deadband_uj
        self.draw_ml_per_min = int(wh.get("draw_l_per_min", 8) * 1000)
        # A draw takes k * (tank_mk - inlet_mk) // 60000 mW, k = ml/min x J/(L K); with
        # k = 60000 q + r that is q * dT + r * dT // 60000 (r * dT is split again in _refresh)
        k = self.draw_ml_per_min * _WATER_J_PER_L_K
        self._draw_q = k // 60000
        self._draw_r = k % 60000
        self._draws = []        # (start, end) ms within a day, sorted
        for hour, litres in wh.get("draws", ()):
            start = int(hour * _HOUR_MS)
            self._draws.append((start, start + int(litres * 60000000) // self.draw_ml_per_min))
        self._draws.sort()
        self.wh_drawing = False

        # EV: arrives at arrive_h with need_wh to take; draws min(pilot, max_a) from
        # response_delay_ms after the pilot changes; nothing below min_a (J1772: a pilot
        # under 6 A does not allow charging); stops when full.
        self.ev_volts = self._load_volts(ev)
        self.ev_max_ma = int(ev["max_a"] * 1000)
        self.ev_min_ma = int(ev.get("min_a", 6) * 1000)
        self.ev_delay_ms = int(ev.get("response_delay_ms", 5000))
        self.ev_output = ev.get("output")
        # ms since the start of the panel's day (see _next_day), None once arrived
        self._ev_arrive_ms = int(ev["arrive_h"] * _HOUR_MS) if ev.get("arrive_h") is not None \
            else None
        self._ev_need0_j = int(ev["need_wh"]) * _J_PER_WH
        self.ev_present = False
        self.pilot_ma = 0           # what the charger offers now
        self.ev_target_ma = 0       # what the vehicle is acting on
        self._pending = []          # [t_ms, ma] pilot changes not yet acted on (day's ms)

        # Time: the panel's day (whole days since the start, in s) and ms within it.
        self._day_s = 0
        self._now_ms = 0
        # The profile is read at day_ms + ms: a periodic profile (period_ms) is read modulo
        # its period, so that stays small; any other passes 2**30 ms after 12.4 days, and
        # is then asked only when its cached bound on its next change runs out (hourly for
        # ConstantProfile).
        self._prof_period_ms = getattr(profile, "period_ms", 0)
        self._prof_day_ms = 0
        self._prof_next_ms = -1     # the profile's next change, ms in the panel's day
        self._events(0)
        self._refresh()

    def _legs(self, legs):
        if legs not in ("L1", "L2", "L1L2"):
            raise ValueError("legs must be 'L1', 'L2' or 'L1L2', got %r" % (legs,))
        if not self.split_phase:
            return "L1"             # single phase: every load is line to neutral
        return legs

    def _load_volts(self, load):
        legs = self._legs(load.get("legs", "L1L2"))
        v = 2 * self.volts if legs == "L1L2" else self.volts
        if "volts" in load and int(load["volts"]) != v:
            raise ValueError("load volts %r disagree with the supply (%d V for legs %r)"
                             % (load["volts"], v, legs))
        return v

    # --- inputs from the machine layer -------------------------------------------------

    def set_contactor(self, output, closed):
        """Drive contactor output's coil; contacts follow at once unless welded."""
        self._coil[output] = 1 if closed else 0
        self._refresh()

    def fail_contactor_welded(self, output, welded=True):
        """Fault injection: contacts of output stay closed whatever the coil does."""
        self._welded[output] = 1 if welded else 0
        self._refresh()

    def contact_closed(self, output):
        """The contactor's real state (what an auxiliary contact reports)."""
        return bool(self._coil[output] or self._welded[output])

    def set_pilot_amps(self, amps):
        """J1772 pilot: the current the charger offers; 0 pauses. The EV follows later."""
        ma = int(amps * 1000 + 0.5) if amps > 0 else 0
        if ma == self.pilot_ma:
            return
        self.pilot_ma = ma
        if self.ev_present:
            self._queue_pilot(self._now_ms + self.ev_delay_ms, ma)

    def ev_plug_in(self, need_wh):
        """Plug in a vehicle now that needs need_wh (replaces any vehicle present)."""
        self._ev_arrive_ms = None
        self._arrive(int(need_wh * _J_PER_WH))
        self._refresh()

    def ev_unplug(self):
        self.ev_present = False
        self._e[_E_NEED] = 0
        self._e[_E_NEED + 1] = 0
        self.ev_target_ma = 0
        self._pending.clear()
        self._refresh()

    # --- time --------------------------------------------------------------------------

    @property
    def t_ms(self):
        """The panel's time, ms since the start (a heap int on a 32-bit port after 12.4 days)."""
        return self._day_s * 1000 + self._now_ms

    @property
    def ev_arrive_ms(self):
        """When the EV is due, ms since the start; None once it has arrived (or was plugged in)."""
        a = self._ev_arrive_ms
        return None if a is None else self._day_s * 1000 + a

    def advance_to(self, t_ms, t_s=0):
        """Integrate the panel from its time to t_s s + t_ms ms since the start (never back).

        advance_to(ms) serves for 12.4 days; a longer run gives whole seconds and the ms
        within the second, advance_to(ms, s), so that no argument reaches 2**30."""
        end = (t_s - self._day_s) * 1000 + t_ms       # ms since the start of the panel's day
        if end < self._now_ms:
            raise ValueError("time went back: %d < %d ms" % (t_s * 1000 + t_ms, self.t_ms))
        while self._now_ms < end:
            t0 = self._now_ms
            t1 = self._next_event(t0)
            if t1 > end:
                t1 = end
            self._integrate(t0, t1)
            self._now_ms = t1
            if t1 >= _DAY_MS:
                self._next_day()
                t1 -= _DAY_MS
                end -= _DAY_MS
            self._events(t1)
            self._refresh()

    def _next_day(self):
        """Moves the panel's day on: every time kept as ms in the day comes back a day."""
        self._day_s += _DAY_S
        self._now_ms -= _DAY_MS
        self._prof_next_ms -= _DAY_MS
        day_ms = self._prof_day_ms + _DAY_MS
        period = self._prof_period_ms
        self._prof_day_ms = day_ms % period if period else day_ms
        for p in self._pending:
            p[0] -= _DAY_MS
        if self._ev_arrive_ms is not None:
            self._ev_arrive_ms -= _DAY_MS

    def _next_event(self, t0):
        t = t0 + (_SEG_DRAW_MS if self.wh_drawing else _SEG_MS)
        if self._prof_next_ms < t:
            # A profile's next change is the same from any time before it (for
            # ConstantProfile, t + 1 h is later than any step): ask again only when it is near.
            day_ms = self._prof_day_ms
            self._prof_next_ms = self.profile.next_change_ms(day_ms + t0) - day_ms
            if self._prof_next_ms < t:
                t = self._prof_next_ms
        arrive = self._ev_arrive_ms
        if arrive is not None and not self.ev_present and t0 < arrive < t:
            t = arrive
        if self._pending and self._pending[0][0] < t:
            t = self._pending[0][0]
        e = self._e
        if self.ev_mw > 0:
            c = t0 + _ms_to_make(e[_E_NEED], e[_E_NEED + 1], self.ev_mw)
            if c < t:
                t = c
        rate = self._wh_net_mw
        if self.wh_element_mw and rate < 0:
            c = t0 + _ms_to_make(e[_E_DEFICIT], e[_E_DEFICIT + 1], -rate)
            if c < t:
                t = c
        elif not self.wh_calling and rate > 0:
            j = self._deadband_j - e[_E_DEFICIT]
            u = self._deadband_uj - e[_E_DEFICIT + 1]
            if u < 0:
                u += _UJ_PER_J
                j -= 1
            c = t0 + _ms_to_make(j, u, rate)
            if c < t:
                t = c
        for start, end in self._draws:      # t0 is within the panel's day
            if t0 < start < t:
                t = start
            if t0 < end < t:
                t = end
            b = _DAY_MS + start
            if t0 < b < t:
                t = b
        return t if t > t0 else t0 + 1

    def _integrate(self, t0, t1):
        dt = t1 - t0                # <= _SEG_MS
        s = dt // 1000
        ms = dt - s * 1000
        d = self._de
        e = self._e
        if self.profile.linear:
            # the trapezoid, floor((p0 + p1) * dt / 2)
            w1 = self.profile.watts_at_ms(self._prof_day_ms + t1)
            _energy(d, _D_BASE, self.base_mw + 1000 * w1, s, ms)
            _part(d, _D_BASE, d[_D_BASE], d[_D_BASE + 1], 500)
        else:
            _energy(d, _D_BASE, self.base_mw, s, ms)
        _energy(d, _D_EV, self.ev_mw, s, ms)
        _energy(d, _D_WH, self.wh_element_mw, s, ms)
        _energy(d, _D_DRAW, self.wh_draw_mw, s, ms)
        _energy(d, _D_LOSS, self.wh_loss_mw, s, ms)
        _add_total(e, _E_BASE, d, _D_BASE)
        _add_total(e, _E_DRAWN, d, _D_DRAW)
        _add_total(e, _E_LOSS, d, _D_LOSS)
        # L1's share, as one wide int would floor it: base * share // 1000, and of a 240 V
        # load e // 2 (an L1 load all of it, an L2 load none)
        _part(d, _D_L1, d[_D_BASE], d[_D_BASE + 1], self.base_l1_share_pm)
        _add_total(e, _E_L1, d, _D_L1)
        if self.ev_mw:
            _add_total(e, _E_EV, d, _D_EV)
            _add_j(e, _E_NEED, -d[_D_EV], -d[_D_EV + 1])
            _part(d, _D_L1, d[_D_EV], d[_D_EV + 1], self._l1_pm[EV])
            _add_total(e, _E_L1, d, _D_L1)
        if self.wh_element_mw:
            _add_total(e, _E_WH, d, _D_WH)
            _part(d, _D_L1, d[_D_WH], d[_D_WH + 1], self._l1_pm[WATER_HEATER])
            _add_total(e, _E_L1, d, _D_L1)
        _add_j(e, _E_DEFICIT, d[_D_DRAW] + d[_D_LOSS] - d[_D_WH],
               d[_D_DRAW + 1] + d[_D_LOSS + 1] - d[_D_WH + 1])
        j = e[_E_DEFICIT]
        if j > self._max_deficit_j or (j == self._max_deficit_j
                                       and e[_E_DEFICIT + 1] >= self._max_deficit_uj):
            e[_E_DEFICIT] = self._max_deficit_j
            e[_E_DEFICIT + 1] = self._max_deficit_uj

    def _l1_part(self, k, e):
        legs = self.legs[k]
        return e // 2 if legs == "L1L2" else (e if legs == "L1" else 0)

    def _events(self, t):
        arrive = self._ev_arrive_ms
        if arrive is not None and not self.ev_present and t >= arrive:
            self._ev_arrive_ms = None
            self._arrive(self._ev_need0_j)
        while self._pending and self._pending[0][0] <= t:
            self.ev_target_ma = self._pending.pop(0)[1]
        e = self._e
        j = e[_E_NEED]
        if self.ev_present and (j < 0 or (j == 0 and e[_E_NEED + 1] == 0)) \
                and (self.ev_target_ma or self._pending):
            self.ev_target_ma = 0       # full: the vehicle stops and ignores the pilot
            self._pending.clear()
        drawing = False
        for start, end in self._draws:  # t is ms within the panel's day
            if start <= t < end:
                drawing = True
        self.wh_drawing = drawing
        j = e[_E_DEFICIT]
        if j > self._deadband_j or (j == self._deadband_j
                                    and e[_E_DEFICIT + 1] >= self._deadband_uj):
            self.wh_calling = True
        elif j < 0 or (j == 0 and e[_E_DEFICIT + 1] == 0):
            self.wh_calling = False

    def _arrive(self, need_j):
        self.ev_present = True
        self._e[_E_NEED] = need_j
        self._e[_E_NEED + 1] = 0
        self.ev_target_ma = 0
        self._pending.clear()
        if self.pilot_ma:
            self._queue_pilot(self._now_ms + self.ev_delay_ms, self.pilot_ma)

    def _queue_pilot(self, t, ma):
        p = self._pending
        if p and (p[-1][0] == t or len(p) >= _MAX_PENDING):
            p[-1][1] = ma       # the vehicle only acts on the latest of a burst
        else:
            p.append([t, ma])

    def _refresh(self):
        """Recompute every current and power from the state at the panel's time."""
        t = self._now_ms
        ma = self.ma
        if t >= self._prof_next_ms or self.profile.linear:
            # a step profile holds its watts until its next change
            day_ms = self._prof_day_ms
            base_w = self.profile.watts_at_ms(day_ms + t)
            if t >= self._prof_next_ms:
                self._prof_next_ms = self.profile.next_change_ms(day_ms + t) - day_ms
            self.base_mw = base_w * 1000
            l1_w = base_w * self.base_l1_share_pm // 1000
            vpf = self.volts * self.base_pf_pm
            # W * 10**6 // (V * pf permille): mA
            ma[BASE_L1] = _div(l1_w, 0, 1000000, vpf)
            ma[BASE_L2] = _div(base_w - l1_w, 0, 1000000, vpf)
            self.base_l1_mw = l1_w * 1000
            self.base_l2_mw = (base_w - l1_w) * 1000

        on = self.wh_calling and self.contact_closed(self.wh_output)
        self.wh_element_mw = self.wh_rated_mw if on else 0
        ma[WATER_HEATER] = self.wh_element_mw // self.wh_volts
        tank_mk = self.tank_mk
        loss = self.loss_mw_per_k * (tank_mk - self.ambient_mk) // 1000
        draw = 0
        if self.wh_drawing and tank_mk > self.inlet_mk:
            # k * dt_mk // 60000 with k = 60000 q + r, and r * dt_mk = 1000 hi + lo
            dt_mk = tank_mk - self.inlet_mk
            r = self._draw_r
            x = r * (dt_mk % 1000)
            draw = self._draw_q * dt_mk + _div(r * (dt_mk // 1000) + x // 1000, x % 1000,
                                               1000, 60000)
        self.wh_draw_mw = draw
        self.wh_loss_mw = loss
        self._wh_net_mw = loss + draw - self.wh_element_mw

        ev_ma = 0
        j = self._e[_E_NEED]
        if (self.ev_present and (j > 0 or (j == 0 and self._e[_E_NEED + 1] > 0))
                and self.ev_target_ma >= self.ev_min_ma
                and (self.ev_output is None or self.contact_closed(self.ev_output))):
            ev_ma = self.ev_target_ma if self.ev_target_ma < self.ev_max_ma else self.ev_max_ma
        ma[EV] = ev_ma
        # ma * V * pf // 1000, with ma * V = 1000 k + x so nothing passes 2**30
        mva = ev_ma * self.ev_volts
        k = mva // 1000
        self.ev_mw = k * self.ev_pf_pm + (mva - k * 1000) * self.ev_pf_pm // 1000

    # --- outputs -----------------------------------------------------------------------

    @property
    def tank_mk(self):
        # deficit_uj // (J/K x 1000) == (deficit in mJ) // (J/K)
        e = self._e
        return self.setpoint_mk - _div(e[_E_DEFICIT], e[_E_DEFICIT + 1] // 1000, 1000,
                                       self.tank_j_per_k)

    @property
    def ev_ma(self):
        return self.ma[EV]

    @property
    def wh_ma(self):
        return self.ma[WATER_HEATER]

    @property
    def ev_w(self):
        return self.ev_mw // 1000

    @property
    def wh_w(self):
        return self.wh_element_mw // 1000

    @property
    def base_w(self):
        return self.base_mw // 1000

    @property
    def total_w(self):
        return (self.base_mw + self.wh_element_mw + self.ev_mw) // 1000

    @property
    def l1_w(self):
        return (self.base_l1_mw + self._l1_part(WATER_HEATER, self.wh_element_mw)
                + self._l1_part(EV, self.ev_mw)) // 1000

    @property
    def l2_w(self):
        return self.total_w - self.l1_w

    # Energies in uJ, as they were kept before (heap ints on a 32-bit port: for tests and
    # reports, not for every step).

    @property
    def ev_energy_uj(self):
        return _total_uj(self._e, _E_EV)

    @property
    def wh_energy_uj(self):
        return _total_uj(self._e, _E_WH)

    @property
    def base_energy_uj(self):
        return _total_uj(self._e, _E_BASE)

    @property
    def import_energy_uj(self):
        return self.base_energy_uj + self.ev_energy_uj + self.wh_energy_uj

    @property
    def l1_energy_uj(self):
        return _total_uj(self._e, _E_L1)

    @property
    def l2_energy_uj(self):
        return self.import_energy_uj - self.l1_energy_uj

    @property
    def wh_drawn_uj(self):
        return _total_uj(self._e, _E_DRAWN)

    @property
    def wh_loss_uj(self):
        return _total_uj(self._e, _E_LOSS)

    @property
    def ev_need_uj(self):
        return self._e[_E_NEED] * _UJ_PER_J + self._e[_E_NEED + 1]

    @property
    def wh_deficit_uj(self):
        return self._e[_E_DEFICIT] * _UJ_PER_J + self._e[_E_DEFICIT + 1]

    # Whole J and Wh: small ints (J pass 2**30 only beyond 298 kWh).

    @property
    def ev_energy_j(self):
        return self._e[_E_EV] * _J_PER_WH + self._e[_E_EV + 1]

    @property
    def wh_energy_j(self):
        return self._e[_E_WH] * _J_PER_WH + self._e[_E_WH + 1]

    @property
    def import_energy_j(self):
        e = self._e
        return ((e[_E_BASE] + e[_E_EV] + e[_E_WH]) * _J_PER_WH
                + e[_E_BASE + 1] + e[_E_EV + 1] + e[_E_WH + 1]
                + (e[_E_BASE + 2] + e[_E_EV + 2] + e[_E_WH + 2]) // _UJ_PER_J)

    @property
    def ev_need_remaining_j(self):
        j = self._e[_E_NEED]
        return j if j > 0 else 0

    @property
    def ev_need_remaining_wh(self):
        j = self._e[_E_NEED]
        return j // _J_PER_WH if j > 0 else 0

    @property
    def ev_energy_wh(self):
        return self._e[_E_EV]

    @property
    def ev_state(self):
        """J1772 state as the pilot sees it: 'A' unplugged, 'B' plugged, 'C' charging."""
        if not self.ev_present:
            return "A"
        return "C" if self.ma[EV] else "B"

    def leg_phasor_ma(self, leg):
        """(re, im) in mA RMS of the current on leg 'L1' or 'L2', CT oriented for import on
        that leg, referenced to V(L1); an L2 phasor in phase with -V(L1) has re < 0."""
        sign = 1 if leg == "L1" else -1
        re = im = 0
        for k in range(N_COMPONENTS):
            if leg in self.legs[k]:
                re += self.ma[k] * self.unit_re[k]
                im += self.ma[k] * self.unit_im[k]
        return sign * re // _Q14, sign * im // _Q14

    def leg_ma(self, leg):
        """RMS current magnitude on leg 'L1' or 'L2', mA."""
        re, im = self.leg_phasor_ma(leg)
        return int(math.sqrt(re * re + im * im) + 0.5)
