"""Metering: per window of ADC samples, RMS amps and volts, real power, PF, legs and faults."""
# Pure logic: the sampler hands in an interleaved array('H') buffer (buf[r * nch + c] is
# channel c of round r), process() updates the fields below in place and allocates nothing.
# The per-sample work and all arithmetic on large values is in rms.py (viper); here, per
# window, only ints read from the result tables are added and compared. Their bounds, with
# at most 8 channels and scales of at most 256 mA or mV per count (checked when set, in
# metercal.py): mA and mV < 2**20, W and VA < 2**22, a leg's summed loads * 100 < 2**30, so
# on the ESP32 every per-window int is a small int (< 2**30) and needs no heap.
# DC: each window's own mean is removed (over whole cycles that is the bias exactly, however
# it drifts); the tracked bias centres the next window's samples and is the crossing level.
# Setting up and calibrating is in metercal.py, imported only for that, so the code that
# runs only at boot or from the REPL is not resident while the firmware measures.
from micropython import const
import rms

FAULT_RAIL = const(1)           # channel pinned to a rail: broken bias or floating input
FAULT_CLIP = const(2)           # samples on a rail: current beyond the CT's range
FAULT_NO_VOLTAGE = const(4)     # voltage channel present but no AC on it
FAULT_IMPLAUSIBLE = const(8)    # a mains leg reads well below its sub-metered loads


def _scale(x, q):
    """x * q / 2**14, rounded, for |x| < 2**22, q < 2**15, in small ints (no heap on the
    ESP32): (x >> 8) * q < 2**29."""
    if x < 0:
        return -_scale(-x, q)
    return ((x >> 8) * q + ((x & 255) * q >> 8) + 32) >> 6


def _isqrt(v):
    """floor(sqrt(v)) for 0 <= v < 2**30."""
    if v < 2:
        return v
    x = 1 << 15
    while True:
        y = (x + v // x) >> 1
        if y >= x:
            return x
        x = y


class Meter:
    """Meter(channels, slot_us, nominal_volts, hz, round_us=None, ...): channels is the
    board's CHANNELS (at most one of kind "v"); channel c of round r was sampled at
    t0 + r * round_us + c * slot_us (round_us defaults to slot_us * len(channels)).
    The settings and their checks are metercal.setup's.

    A measurement is one window (process(buf, rounds)) or several, each a whole number of
    cycles summed into one result: begin(), add(buf, rounds) per window, end(). The sampler
    scans a cycle at a time so that no scan holds the scheduler for a whole measurement.
    After process() or end(), updated in place: valid, faults (FAULT_* bits),
    fault_channel (-1 none), estimated (powers from nominal volts and an assumed PF),
    cycles, first_round and window_rounds (the rounds measured), vrms_mv; per channel
    (array 'i') irms_ma, p_w (signed), s_va, pf_x1000 (the voltage channel's entries are 0);
    leg_ma and leg_w (array 'i', 2: the mains CTs on L1, L2) and total_w (their sum).
    """
    # metercal.setup also sets the private state process() reads: the kernel tables _chans,
    # _acc, _cal, _res, _status, _win (layouts in rms.py); _nch, _vch, _voff; the legs' _mains and
    # _loads; the limits _hyst, _rpc256, _nominal_mv, _min_vrms_mv, _impl_pct, _impl_margin.

    # ---- configuration: each delegates to metercal, imported only when called ----

    def __init__(self, *args, **kw):
        """Validate the settings, allocate the tables and outputs: metercal.setup."""
        import metercal
        metercal.setup(self, *args, **kw)

    def calibrate(self, *args, **kw):
        """calibrate(index, gain=None, offset=None, phase_deg=None, ...): metercal.calibrate."""
        import metercal
        metercal.calibrate(self, *args, **kw)

    def calibration(self, index):
        """Channel index's settings, for the console: metercal.calibration."""
        import metercal
        return metercal.calibration(self, index)

    # ---- per window ----

    def process(self, buf, rounds):
        """Measure one window of `rounds` rounds from buf; True if the result is valid."""
        self.begin()
        self.add(buf, rounds)
        return self.end()

    def begin(self):
        """Starts a measurement: no rounds summed yet."""
        rms.clear(self._acc, self._nch)
        self._n = 0
        self._n256 = 0
        self._cycles = 0
        self._mode = -1         # set by the first window: 1 cycles cut at crossings, 0 timed
        self._first = 0

    def add(self, buf, rounds):
        """Sums the whole cycles of one window of `rounds` rounds from buf. A window without
        the crossings the first one had is left out (the measurement covers fewer cycles)."""
        nch = self._nch
        if rounds < 2 or rounds > rms.MAX_ROUNDS or len(buf) < rounds * nch:
            raise ValueError("rounds must be 2..MAX_ROUNDS and fit in the buffer")
        vch = self._vch
        chans = self._chans
        win = self._win
        cycles = 0
        if vch >= 0 and self._mode != 0:
            cycles = rms.find_cycles(buf, nch, rounds, vch, chans[self._voff], self._hyst,
                                     win)
        if cycles > 0:
            r0 = win[0]
            r1 = win[1]
            mode = 1
        elif self._mode == 1:
            return          # the voltage lost its crossings mid-measurement: skip the window
        else:
            # timed window: the whole nominal cycles that fit
            r0 = 0
            rpc256 = self._rpc256
            cycles = (rounds << 8) // rpc256
            r1 = (cycles * rpc256) >> 8 if cycles > 0 else rounds
            mode = 0
        if self._n + r1 - r0 > rms.MAX_ROUNDS:
            raise ValueError("a measurement is at most MAX_ROUNDS rounds")
        if self._mode < 0:
            self._mode = mode
            self._first = r0
        rms.accumulate(buf, nch, rounds, r0, r1, vch if mode else -1, chans, self._acc)
        self._n += r1 - r0
        # The sums are over whole rounds r0..r1-1; the cycle itself ran from win[2]/256 of
        # a round before r0 to win[3]/256 before r1. At a voltage zero crossing v*v and v*i
        # are ~0, so the sums hold the cycle's integral, and only its length needs the
        # fraction: a 1-cycle window cut at whole rounds is up to 1.3 % off at 60 Hz.
        self._n256 += ((r1 - r0) << 8) + (win[2] - win[3] if mode else 0)
        self._cycles += cycles

    def end(self):
        """RMS, powers, legs and faults of the windows added since begin(); True if valid."""
        n = self._n
        if n < 2:
            raise ValueError("end() needs at least one window added")
        nch = self._nch
        vch = self._vch
        chans = self._chans
        measured = self._mode
        cycles = self._cycles
        r0 = self._first
        irms = self.irms_ma
        pw = self.p_w
        status = self._status
        vrms = rms.finish(n, nch, vch, measured, self._min_vrms_mv, self._cal,
                          self._acc, chans, self._res, irms, pw, self.s_va, self.pf_x1000,
                          status)
        n256 = self._n256
        if n256 != n << 8 and n256 > 0:
            # means over the cycles' true length: powers x n/L, RMS x sqrt(n/L) (Q14)
            q = (n << 18) // (n256 >> 4)
            sq = _isqrt(q << 14)
            sva = self.s_va
            for c in range(nch):
                irms[c] = _scale(irms[c], sq)
                pw[c] = _scale(pw[c], q)
                sva[c] = _scale(sva[c], q)
            vrms = _scale(vrms, sq)
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
        self.window_rounds = n
        self.faults = faults
        self.fault_channel = fch
        self.valid = faults == 0
        return self.valid
