"""The panel behind the simulated board: mains, household base load, water heater and EV."""

# Units: time in ms since the start of the run (a plain int that never wraps), power in mW,
# energy in uJ (mW x ms), currents in mA RMS, temperatures in mK; all ints. Floats are used
# only for the power factors' unit phasors, once, in the constructor.
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
_HOUR_MS = const(3600000)
_SEG_MS = const(60000)          # longest step of the tank model (its losses vary slowly)
_SEG_DRAW_MS = const(1000)      # ... while hot water is drawn (extraction follows tank temp)
_MAX_PENDING = const(16)        # pilot changes the vehicle has yet to act on
_WATER_J_PER_L_K = const(4186)
_MAX_OUTPUTS = const(8)


def _permille(x, name, lo, hi):
    v = int(x * 1000 + 0.5)
    if not lo <= v <= hi:
        raise ValueError("%s must be in %g..%g, got %r" % (name, lo / 1000, hi / 1000, x))
    return v


def _unit(pf_pm):
    """Unit phasor of a lagging current with power factor pf_pm/1000, Q14."""
    phi = math.acos(pf_pm / 1000)
    return int(math.cos(phi) * _Q14 + 0.5), -int(math.sin(phi) * _Q14 + 0.5)


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
        self.wh_deficit_uj = (self.setpoint_mk - int(wh.get("start_c", 60) * 1000)) \
            * self.tank_j_per_k * 1000
        self.wh_calling = self.wh_deficit_uj >= self.deadband_uj
        self.draw_ml_per_min = int(wh.get("draw_l_per_min", 8) * 1000)
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
        self.ev_arrive_ms = int(ev["arrive_h"] * _HOUR_MS) if ev.get("arrive_h") is not None \
            else None
        self._ev_need0_uj = int(ev["need_wh"]) * 3600 * 1000000
        self.ev_need_uj = 0
        self.ev_present = False
        self.pilot_ma = 0           # what the charger offers now
        self.ev_target_ma = 0       # what the vehicle is acting on
        self._pending = []          # [t_ms, ma] pilot changes not yet acted on

        # Energy delivered, uJ.
        self.ev_energy_uj = 0
        self.wh_energy_uj = 0
        self.base_energy_uj = 0
        self.import_energy_uj = 0
        self.l1_energy_uj = 0
        self.l2_energy_uj = 0
        self.wh_drawn_uj = 0        # heat taken from the tank by hot water draws
        self.wh_loss_uj = 0         # heat lost through the tank's insulation

        self.t_ms = 0
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
            self._queue_pilot(self.t_ms + self.ev_delay_ms, ma)

    def ev_plug_in(self, need_wh):
        """Plug in a vehicle now that needs need_wh (replaces any vehicle present)."""
        self.ev_arrive_ms = None
        self._arrive(need_wh * 3600 * 1000000)
        self._refresh()

    def ev_unplug(self):
        self.ev_present = False
        self.ev_need_uj = 0
        self.ev_target_ma = 0
        self._pending = []
        self._refresh()

    # --- time --------------------------------------------------------------------------

    def advance_to(self, t_ms):
        """Integrate the panel from its time self.t_ms to t_ms (ms since start, never back)."""
        if t_ms < self.t_ms:
            raise ValueError("time went back: %d < %d ms" % (t_ms, self.t_ms))
        while self.t_ms < t_ms:
            t0 = self.t_ms
            t1 = self._next_event(t0)
            if t1 > t_ms:
                t1 = t_ms
            self._integrate(t0, t1)
            self.t_ms = t1
            self._events(t1)
            self._refresh()

    def _next_event(self, t0):
        t = t0 + (_SEG_DRAW_MS if self.wh_drawing else _SEG_MS)
        c = self.profile.next_change_ms(t0)
        if c < t:
            t = c
        if self.ev_arrive_ms is not None and not self.ev_present and t0 < self.ev_arrive_ms < t:
            t = self.ev_arrive_ms
        if self._pending and self._pending[0][0] < t:
            t = self._pending[0][0]
        if self.ev_mw > 0:
            c = t0 + (self.ev_need_uj + self.ev_mw - 1) // self.ev_mw
            if c < t:
                t = c
        rate = self._wh_net_mw
        if self.wh_element_mw and rate < 0:
            c = t0 + (self.wh_deficit_uj - rate - 1) // -rate      # ceil(deficit / -rate)
            if c < t:
                t = c
        elif not self.wh_calling and rate > 0:
            c = t0 + (self.deadband_uj - self.wh_deficit_uj + rate - 1) // rate
            if c < t:
                t = c
        day0 = t0 - t0 % _DAY_MS
        for start, end in self._draws:
            b = day0 + start
            if t0 < b < t:
                t = b
            b = day0 + end
            if t0 < b < t:
                t = b
            b = day0 + _DAY_MS + start
            if t0 < b < t:
                t = b
        return t if t > t0 else t0 + 1

    def _integrate(self, t0, t1):
        dt = t1 - t0
        if self.profile.linear:
            base_uj = (self.base_mw + 1000 * self.profile.watts_at_ms(t1)) * dt // 2
        else:
            base_uj = self.base_mw * dt
        ev_uj = self.ev_mw * dt
        wh_uj = self.wh_element_mw * dt
        self.base_energy_uj += base_uj
        self.ev_energy_uj += ev_uj
        self.ev_need_uj -= ev_uj
        self.wh_energy_uj += wh_uj
        self.import_energy_uj += base_uj + ev_uj + wh_uj
        l1_base = base_uj * self.base_l1_share_pm // 1000
        l1 = l1_base + self._l1_part(WATER_HEATER, wh_uj) + self._l1_part(EV, ev_uj)
        self.l1_energy_uj += l1
        self.l2_energy_uj += base_uj + ev_uj + wh_uj - l1
        self.wh_drawn_uj += self.wh_draw_mw * dt
        self.wh_loss_uj += self.wh_loss_mw * dt
        d = self.wh_deficit_uj + self._wh_net_mw * dt
        self.wh_deficit_uj = d if d < self.max_deficit_uj else self.max_deficit_uj

    def _l1_part(self, k, e):
        legs = self.legs[k]
        return e // 2 if legs == "L1L2" else (e if legs == "L1" else 0)

    def _events(self, t):
        if self.ev_arrive_ms is not None and not self.ev_present and t >= self.ev_arrive_ms:
            self.ev_arrive_ms = None
            self._arrive(self._ev_need0_uj)
        while self._pending and self._pending[0][0] <= t:
            self.ev_target_ma = self._pending.pop(0)[1]
        if self.ev_present and self.ev_need_uj <= 0 and (self.ev_target_ma or self._pending):
            self.ev_target_ma = 0       # full: the vehicle stops and ignores the pilot
            self._pending = []
        tod = t % _DAY_MS
        drawing = False
        for start, end in self._draws:
            if start <= tod < end:
                drawing = True
        self.wh_drawing = drawing
        if self.wh_deficit_uj >= self.deadband_uj:
            self.wh_calling = True
        elif self.wh_deficit_uj <= 0:
            self.wh_calling = False

    def _arrive(self, need_uj):
        self.ev_present = True
        self.ev_need_uj = need_uj
        self.ev_target_ma = 0
        self._pending = []
        if self.pilot_ma:
            self._queue_pilot(self.t_ms + self.ev_delay_ms, self.pilot_ma)

    def _queue_pilot(self, t, ma):
        p = self._pending
        if p and (p[-1][0] == t or len(p) >= _MAX_PENDING):
            p[-1][1] = ma       # the vehicle only acts on the latest of a burst
        else:
            p.append([t, ma])

    def _refresh(self):
        """Recompute every current and power from the state at t_ms."""
        t = self.t_ms
        base_w = self.profile.watts_at_ms(t)
        self.base_mw = base_w * 1000
        l1_w = base_w * self.base_l1_share_pm // 1000
        volts = self.volts
        pf = self.base_pf_pm
        ma = self.ma
        ma[BASE_L1] = l1_w * 1000000 // (volts * pf)
        ma[BASE_L2] = (base_w - l1_w) * 1000000 // (volts * pf)
        self.base_l1_mw = l1_w * 1000
        self.base_l2_mw = (base_w - l1_w) * 1000

        on = self.wh_calling and self.contact_closed(self.wh_output)
        self.wh_element_mw = self.wh_rated_mw if on else 0
        ma[WATER_HEATER] = self.wh_element_mw // self.wh_volts
        tank_mk = self.tank_mk
        loss = self.loss_mw_per_k * (tank_mk - self.ambient_mk) // 1000
        draw = 0
        if self.wh_drawing and tank_mk > self.inlet_mk:
            draw = self.draw_ml_per_min * _WATER_J_PER_L_K * (tank_mk - self.inlet_mk) // 60000
        self.wh_draw_mw = draw
        self.wh_loss_mw = loss
        self._wh_net_mw = loss + draw - self.wh_element_mw

        ev_ma = 0
        if (self.ev_present and self.ev_need_uj > 0 and self.ev_target_ma >= self.ev_min_ma
                and (self.ev_output is None or self.contact_closed(self.ev_output))):
            ev_ma = self.ev_target_ma if self.ev_target_ma < self.ev_max_ma else self.ev_max_ma
        ma[EV] = ev_ma
        self.ev_mw = ev_ma * self.ev_volts * self.ev_pf_pm // 1000

    # --- outputs -----------------------------------------------------------------------

    @property
    def tank_mk(self):
        return self.setpoint_mk - self.wh_deficit_uj // (self.tank_j_per_k * 1000)

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

    @property
    def ev_energy_j(self):
        return self.ev_energy_uj // 1000000

    @property
    def wh_energy_j(self):
        return self.wh_energy_uj // 1000000

    @property
    def import_energy_j(self):
        return self.import_energy_uj // 1000000

    @property
    def ev_need_remaining_j(self):
        return self.ev_need_uj // 1000000 if self.ev_need_uj > 0 else 0

    @property
    def ev_need_remaining_wh(self):
        return self.ev_need_uj // 3600000000 if self.ev_need_uj > 0 else 0

    @property
    def ev_energy_wh(self):
        return self.ev_energy_uj // 3600000000

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
