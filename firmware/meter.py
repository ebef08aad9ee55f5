"""Metering: per window of ADC samples, RMS amps and volts, real power, PF, legs and faults."""
# Pure logic: the sampler hands in an interleaved array('H') buffer (buf[r * nch + c] is
# channel c of round r), process() updates the fields below in place and allocates nothing.
# The per-sample work and all arithmetic on large values is in rms.py (viper); here, per
# window, only ints read from the result tables are added and compared. Their bounds, with
# at most _MAX_CH channels and scales of at most 256 mA or mV per count (checked when set):
# mA and mV < 2**20, W and VA < 2**22, a leg's summed loads * 100 < 2**30, so on the ESP32
# every per-window int is a small int (< 2**30) and needs no heap.
# DC: each window's own mean is removed (over whole cycles that is the bias exactly, however
# it drifts); the tracked bias centres the next window's samples and is the crossing level.
from array import array
from micropython import const
import rms

FAULT_RAIL = const(1)           # channel pinned to a rail: broken bias or floating input
FAULT_CLIP = const(2)           # samples on a rail: current beyond the CT's range
FAULT_NO_VOLTAGE = const(4)     # voltage channel present but no AC on it
FAULT_IMPLAUSIBLE = const(8)    # a mains leg reads well below its sub-metered loads

_MAX_CH = const(8)              # ADC1 has eight inputs
_MAX_PER_COUNT = 256.0          # mA or mV per count; keeps the bounds in rms.py
_ADC_COUNTS = 4096
_MID_RAIL = const(2048)
_LEG_CODES = {"L1": 1, "L2": 2, "L1L2": 3}


def _scale(f):
    """(m, s) with f == m / 2**s to 15 bits, 2**14 <= m < 2**15, as rms.finish multiplies."""
    if not f > 0.0:
        raise ValueError("scale must be > 0")
    s = 0
    while f < 16384.0:
        f *= 2.0
        s += 1
    while f >= 32768.0:
        f *= 0.5
        s -= 1
    m = int(f + 0.5)
    if m == 32768:
        m = 16384
        s -= 1
    return m, s


class Meter:
    """Meter(channels, slot_us, nominal_volts, hz, round_us=None, ...): channels is the
    board's CHANNELS (at most one of kind "v"); channel c of round r was sampled at
    t0 + r * round_us + c * slot_us (round_us defaults to slot_us * len(channels)).

    After process(buf, rounds), updated in place: valid, faults (FAULT_* bits),
    fault_channel (-1 none), estimated (powers from nominal volts and an assumed PF),
    cycles, first_round and window_rounds (the rounds measured), vrms_mv; per channel
    (array 'i') irms_ma, p_w (signed), s_va, pf_x1000 (the voltage channel's entries are 0);
    leg_ma and leg_w (array 'i', 2: the mains CTs on L1, L2) and total_w (their sum).
    """

    def __init__(self, channels, slot_us, nominal_volts, hz, round_us=None,
                 full_scale_mv=3300, estimate_pf=0.95, min_volts_pct=50,
                 implausible_pct=80, implausible_margin_ma=2000):
        nch = len(channels)
        if not 1 <= nch <= _MAX_CH:
            raise ValueError("channels: 1..%d, got %d" % (_MAX_CH, nch))
        if round_us is None:
            round_us = slot_us * nch
        if not (slot_us >= 0 and round_us > 0 and round_us >= slot_us * (nch - 1)):
            raise ValueError("slot_us/round_us: need 0 <= slot_us and (nch-1)*slot_us <= round_us")
        if not 45 <= hz <= 65:
            raise ValueError("hz must be 45..65, got %r" % (hz,))
        if not 50 <= nominal_volts <= 480:
            raise ValueError("nominal_volts must be 50..480, got %r" % (nominal_volts,))
        if not 0 < implausible_pct <= 100:
            raise ValueError("implausible_pct must be 1..100, got %r" % (implausible_pct,))
        if not 0 < estimate_pf <= 1:
            raise ValueError("estimate_pf must be 0..1, got %r" % (estimate_pf,))
        if not 0 <= min_volts_pct <= 100:
            raise ValueError("min_volts_pct must be 0..100, got %r" % (min_volts_pct,))
        self.names = tuple(ch["name"] for ch in channels)
        self._nch = nch
        self._channels = channels
        self._slot_us = slot_us
        self._round_us = round_us
        self._hz = hz
        self._nominal = nominal_volts
        self._nominal_mv = int(nominal_volts * 1000)
        self._min_vrms_mv = self._nominal_mv * min_volts_pct // 100
        self._full_scale_v = full_scale_mv / 1000
        self._impl_pct = int(implausible_pct)
        self._impl_margin = int(implausible_margin_ma)
        # rounds per nominal cycle, x256: the timed window when there is no voltage
        self._rpc256 = int(256 * 1000000 / hz / round_us + 0.5)
        vch = -1
        mains = []
        loads = []
        for c, ch in enumerate(channels):
            kind = ch.get("kind")
            if kind == "v":
                if vch >= 0:
                    raise ValueError("%s: only one voltage channel" % ch["name"])
                vch = c
            elif kind == "ct":
                leg = _LEG_CODES.get(ch.get("leg"))
                if leg is None:
                    raise ValueError("%s: leg must be L1, L2 or L1L2" % ch["name"])
                if ch.get("mains"):
                    if leg == 3:
                        raise ValueError("%s: a mains CT is on L1 or L2" % ch["name"])
                    mains.append((c, leg - 1))
                else:
                    loads.append((c, leg))
            else:
                raise ValueError("%s: kind must be 'v' or 'ct'" % ch.get("name"))
        self._vch = vch
        self._voff = vch * rms.NC + rms.C_OFF if vch >= 0 else 0
        self._mains = tuple(mains)
        self._loads = tuple(loads)
        # calibration, per channel
        self._gain = [1.0] * nch
        self._phase = [0.0] * nch
        self._noise6 = [0] * nch
        self._floor = [int(ch.get("rating_a", 20) * 5) for ch in channels]  # 0.5 % of rating
        self._epf = [estimate_pf] * nch
        self._hyst = 64
        # kernel tables (layouts in rms.py) and outputs, allocated once
        self._chans = array("i", [0] * (nch * rms.NC))
        self._acc = array("i", [0] * (nch * rms.NA))
        self._cal = array("i", [0] * (nch * rms.NK))
        self._res = array("i", [0] * (nch * rms.NR))
        self._status = array("i", [0] * rms.NS)
        self._win = array("i", [0, 0])
        for c in range(nch):
            self._chans[c * rms.NC + rms.C_OFF] = _MID_RAIL
        self.irms_ma = array("i", [0] * nch)
        self.p_w = array("i", [0] * nch)
        self.s_va = array("i", [0] * nch)
        self.pf_x1000 = array("i", [0] * nch)
        self.leg_ma = array("i", [0, 0])
        self.leg_w = array("i", [0, 0])
        self.total_w = 0
        self.vrms_mv = 0
        self.valid = False
        self.faults = 0
        self.fault_channel = -1
        self.estimated = vch < 0
        self.cycles = 0
        self.first_round = 0
        self.window_rounds = 0
        for c in range(nch):
            self._apply(c)

    # ---- calibration ----

    def _per_count(self, c):
        """mA (CT) or mV (voltage) per ADC count, with the channel's gain."""
        ch = self._channels[c]
        volts_per_count = self._full_scale_v / _ADC_COUNTS
        if ch["kind"] == "v":
            pc = volts_per_count * ch["volts_per_adc_volt"] * 1000
        else:
            pc = volts_per_count / ch["burden_ohm"] * ch["ct_ratio"] * 1000
        pc *= self._gain[c]
        if not 0 < pc <= _MAX_PER_COUNT:
            raise ValueError("%s: %.3g %s per count is outside 0..%d"
                             % (ch["name"], pc, "mV" if ch["kind"] == "v" else "mA",
                                _MAX_PER_COUNT))
        return pc

    def _apply(self, c):
        """Recompute channel c's kernel and calibration entries from its settings."""
        ch = self._channels[c]
        chans = self._chans
        cal = self._cal
        cb = c * rms.NC
        kb = c * rms.NK
        vch = self._vch
        pc = self._per_count(c)
        m, s = _scale(pc / 8)               # rms.finish gives RMS in eighths of a count
        cal[kb + rms.K_M] = m
        cal[kb + rms.K_S] = s
        if ch["kind"] == "v":
            cal[kb + rms.K_KIND] = 1
            chans[cb + rms.C_PWR] = 0
            peak = int(self._nominal * 1.414 * 1000 / pc)
            self._hyst = min(max(peak // 8, 4), 512)    # crossing hysteresis, counts
            return
        cal[kb + rms.K_KIND] = 0
        leg = _LEG_CODES[ch["leg"]]
        vfactor = 2 if leg == 3 else 1      # a 240 V load sees 2v
        cal[kb + rms.K_NEG] = 1 if leg == 2 else 0
        cal[kb + rms.K_NOISE] = self._noise6[c]
        cal[kb + rms.K_FLOOR] = self._floor[c]
        fs_counts = max(_MID_RAIL / 1.41421, ch.get("rating_a", 0) * 1000 / pc)
        cal[kb + rms.K_FS] = min(int(fs_counts * 8 + 0.5), 32767)
        epf = self._epf[c]
        m, s = _scale(self._nominal * vfactor * epf / 1000)
        cal[kb + rms.K_EPM] = m
        cal[kb + rms.K_EPS] = s
        m, s = _scale(self._nominal * vfactor / 1000)
        cal[kb + rms.K_ESM] = m
        cal[kb + rms.K_ESS] = s
        cal[kb + rms.K_EPF] = int(epf * 1000 + 0.5)
        if vch < 0:
            chans[cb + rms.C_PWR] = 0
            return
        # W per (64 * count**2), and where in time to take the voltage for this channel:
        # sampled (c - vch) slots later, corrected by the two channels' phase lags
        m, s = _scale(self._per_count(vch) * pc / 1e6 * vfactor / 64)
        cal[kb + rms.K_WM] = m
        cal[kb + rms.K_WS] = s
        delay_us = ((c - vch) * self._slot_us
                    + (self._phase[vch] - self._phase[c]) / 360 * 1e6 / self._hz)
        f = delay_us / self._round_us
        k = int(f // 1)
        if not -rms.K_BIAS < k < rms.K_BIAS:
            raise ValueError("%s: voltage shift of %d rounds is out of range" % (ch["name"], k))
        a = int((f - k) * 64 + 0.5)
        if a == 64:
            k += 1
            a = 0
        chans[cb + rms.C_PWR] = 1
        chans[cb + rms.C_K] = k + rms.K_BIAS
        chans[cb + rms.C_A] = a

    def calibrate(self, index, gain=None, offset=None, phase_deg=None, noise_counts=None,
                  floor_ma=None, estimate_pf=None):
        """Set channel index's calibration; None leaves a setting as it is.

        gain: multiplies the board's scale (0.5..2). offset: DC bias in counts to start
        from (it is tracked every window after). phase_deg: how far this channel's signal
        lags the true one at mains frequency (-30..30). noise_counts: RMS noise to subtract.
        floor_ma: a CT reading below this reads 0. estimate_pf: PF assumed without voltage.
        """
        if not 0 <= index < self._nch:
            raise ValueError("index must be 0..%d, got %r" % (self._nch - 1, index))
        name = self.names[index]
        if gain is not None:
            if not 0.5 <= gain <= 2.0:
                raise ValueError("%s: gain must be 0.5..2, got %r" % (name, gain))
            old = self._gain[index]
            self._gain[index] = float(gain)
            try:
                self._per_count(index)
            except ValueError:
                self._gain[index] = old
                raise
        if offset is not None:
            if not 0 <= offset <= 4095:
                raise ValueError("%s: offset must be 0..4095 counts, got %r" % (name, offset))
            self._chans[index * rms.NC + rms.C_OFF] = int(offset)
        if phase_deg is not None:
            if not -30 <= phase_deg <= 30:
                raise ValueError("%s: phase_deg must be -30..30, got %r" % (name, phase_deg))
            self._phase[index] = float(phase_deg)
        if noise_counts is not None:
            if not 0 <= noise_counts <= 64:
                raise ValueError("%s: noise_counts must be 0..64, got %r" % (name, noise_counts))
            self._noise6[index] = int(noise_counts * noise_counts * 64 + 0.5)
        if floor_ma is not None:
            if not 0 <= floor_ma <= 100000:
                raise ValueError("%s: floor_ma must be 0..100000, got %r" % (name, floor_ma))
            self._floor[index] = int(floor_ma)
        if estimate_pf is not None:
            if not 0 < estimate_pf <= 1:
                raise ValueError("%s: estimate_pf must be 0..1, got %r" % (name, estimate_pf))
            self._epf[index] = float(estimate_pf)
        if index == self._vch:
            for c in range(self._nch):  # every CT's power depends on the voltage channel
                self._apply(c)
        else:
            self._apply(index)

    def calibration(self, index):
        """Channel index's settings, for the console."""
        return {"name": self.names[index], "gain": self._gain[index],
                "offset": self._chans[index * rms.NC + rms.C_OFF],
                "phase_deg": self._phase[index],
                "noise_counts": (self._noise6[index] / 64) ** 0.5,
                "floor_ma": self._floor[index], "estimate_pf": self._epf[index]}

    def learn_noise(self, buf, rounds):
        """Measure a window with every load off; its CT variance becomes the noise subtracted."""
        self.process(buf, rounds)
        for c in range(self._nch):
            if c != self._vch:
                self._noise6[c] = self._res[c * rms.NR + rms.R_VAR]
                self._cal[c * rms.NK + rms.K_NOISE] = self._noise6[c]

    # ---- per window ----

    def process(self, buf, rounds):
        """Measure one window of `rounds` rounds from buf; True if the result is valid."""
        nch = self._nch
        if rounds < 2 or rounds > rms.MAX_ROUNDS or len(buf) < rounds * nch:
            raise ValueError("rounds must be 2..MAX_ROUNDS and fit in the buffer")
        vch = self._vch
        chans = self._chans
        win = self._win
        measured = 0
        cycles = 0
        if vch >= 0:
            cycles = rms.find_cycles(buf, nch, rounds, vch, chans[self._voff], self._hyst,
                                     win)
        if cycles > 0:
            r0 = win[0]
            r1 = win[1]
            measured = 1
        else:
            # timed window: the whole nominal cycles that fit
            r0 = 0
            rpc256 = self._rpc256
            cycles = (rounds << 8) // rpc256
            r1 = (cycles * rpc256) >> 8 if cycles > 0 else rounds
        rms.accumulate(buf, nch, rounds, r0, r1, vch if measured else -1, chans, self._acc)
        irms = self.irms_ma
        pw = self.p_w
        status = self._status
        vrms = rms.finish(r1 - r0, nch, vch, measured, self._min_vrms_mv, self._cal,
                          self._acc, chans, self._res, irms, pw, self.s_va, self.pf_x1000,
                          status)
        faults = status[0]              # rms.F_RAIL, F_CLIP, F_NOV == FAULT_* values
        fch = status[1]
        if fch < 0 and faults:
            fch = vch
        self.estimated = status[2] == 0
        self.vrms_mv = vrms if vch >= 0 else self._nominal_mv
        # legs: mains CTs give each leg's current and power; loads are checked against them
        l1 = l2 = w1 = w2 = 0
        m1 = m2 = -1
        for c, leg in self._mains:
            if leg == 0:
                l1 += irms[c]
                w1 += pw[c]
                m1 = c
            else:
                l2 += irms[c]
                w2 += pw[c]
                m2 = c
        load1 = load2 = 0
        for c, legs in self._loads:
            i = irms[c]
            if legs & 1:
                load1 += i
            if legs & 2:
                load2 += i
        pct = self._impl_pct
        margin = self._impl_margin
        if m1 >= 0 and load1 - l1 > margin and l1 * 100 < load1 * pct:
            faults |= FAULT_IMPLAUSIBLE
            if fch < 0:
                fch = m1
        if m2 >= 0 and load2 - l2 > margin and l2 * 100 < load2 * pct:
            faults |= FAULT_IMPLAUSIBLE
            if fch < 0:
                fch = m2
        lm = self.leg_ma
        lw = self.leg_w
        lm[0] = l1
        lm[1] = l2
        lw[0] = w1
        lw[1] = w2
        self.total_w = w1 + w2
        self.cycles = cycles
        self.first_round = r0
        self.window_rounds = r1 - r0
        self.faults = faults
        self.fault_channel = fch
        self.valid = faults == 0
        return self.valid
