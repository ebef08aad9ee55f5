"""ADC samples the firmware reads, computed from the panel's currents through modelled CTs."""

# Signal chain per channel: a sinusoid at the mains frequency (the phasor sum of every current
# the CT sees: same-frequency sinusoids add into one), through the CT ratio and burden resistor
# (or the voltage reference's divider) to ADC volts, plus a mid-rail bias with slow drift,
# plus noise of noise_counts RMS, rounded and clipped to the 12-bit range.
#
# Per window (one fill()) the Python side reduces each channel to integers: the in-phase and
# quadrature amplitudes a, b (counts, Q5) so that the channel's AC part is a*sin + b*cos of
# the mains phase, the bias, and the noise scale. The per-sample work is the viper kernel:
# sine and cosine by linear interpolation in a 1024-entry table (error < 0.01 count),
# a multiply-add, an LCG for noise, rounding and clipping.
#
# That reduction allocates nothing on a 32-bit port (where an int of 2**30 or more is a heap
# object): time comes as whole seconds plus us, and each wide product is formed from 11-bit
# limbs, with the same results as the one wide int it replaces.


import math
import micropython
from array import array
from micropython import const

from panelsim.panel import BASE_L1, BASE_L2, WATER_HEATER, EV

_TABLE_N = const(1024)          # sine table entries per cycle
_SIN_ONE = const(8192)          # table amplitude (Q13), stored offset by +_SIN_ONE (unsigned)
_PHASE_BITS = const(20)         # phase accumulator: 2**20 per cycle
_PHASE_MASK = const(0xFFFFF)
_AMP_Q = const(32)              # amplitudes in 1/32 count
_OUT_SHIFT = const(18)          # Q5 amplitude x Q13 sine -> Q18
_AMP_MAX = const(4096 * 32)     # amplitude limit sqrt(a*a + b*b) <= 2**17 (Q5 counts)
_NOISE_MEAN = const(765)        # sum of three uniform bytes: mean 382.5 * 2 (kept doubled)
_HDR = const(4)                 # params: nch, rounds, phase step per slot, LCG state
_PER_CH = const(5)              # per channel: a, b, phase offset, bias, noise scale
# Slow bias wander (temperature): table index t_ms * 1024 // period_ms, over 1.7 h plus a term
# 3.6 times as long. Only the index mod 1024 counts, so t may be taken mod the period; and
# 6,100,000 = 32 x 190,625, 21,960,000 = 64 x 343,125 keep (t mod period) * 1024 // period
# (as r * 32 // 190,625 and r * 16 // 343,125) under 2**29.
_DRIFT1_S = const(6100)
_DRIFT2_S = const(21960)
_Q14 = const(16384)             # the panel's unit phasors
_LIMB = const(11)               # bits per limb of the amplitude products (see setup())
_LIMB_MASK = const(2047)
_TERM = const(7)                # per term of a channel: source, Q30 gains (re, im) as 3 limbs
_VOLTS = const(4)               # AdcGen._x: the 4 panel currents, then the supply's mV

# Bound (a viper int is 32 bits on the ESP32; this runs on the host, but keeps to it):
# sqrt(a*a + b*b) <= 2**17 (two full swings) and sqrt(s*s + c*c) <= 8193 (interpolated
# table), so |a*s + b*c| <= 2**17 * 8193 < 2**30.01; the noise term is at most
# 765 * noise_scale <= 765 * 2**14 (16 counts RMS, the largest accepted) < 2**23.6; the sum
# plus the rounding half stays below 2**31.


def sine_table():
    """1024-entry sine table, Q13, offset by +8192 so it fits 'H' (viper loads unsigned)."""
    return array("H", (int(_SIN_ONE + _SIN_ONE * math.sin(2 * math.pi * i / _TABLE_N) + 0.5)
                       for i in range(_TABLE_N)))


def _lcg(x):
    return (x * 1664525 + 1013904223) & 0x3FFFFFFF


@micropython.viper
def _fill_viper(buf, table, params, n: int):
    """n = rounds * nch samples into buf (uint16), channels interleaved."""
    out = ptr16(buf)
    sin = ptr16(table)
    p = ptr32(params)
    nch = int(p[0])
    dph = int(p[2])
    x = int(p[3])
    ch = 0
    base = _HDR
    ph = 0                      # mains phase of sample i, 2**20 per cycle
    i = 0
    while i < n:
        a = int(p[base]) - 0x20000000          # stored offset: ptr32 loads unsigned
        b = int(p[base + 1]) - 0x20000000
        q = (ph + int(p[base + 2])) & 0xFFFFF
        j = q >> 10
        f = q & 1023
        s0 = int(sin[j])
        s = s0 - 8192 + ((int(sin[(j + 1) & 1023]) - s0) * f >> 10)
        c0 = int(sin[(j + 256) & 1023])
        c = c0 - 8192 + ((int(sin[(j + 257) & 1023]) - c0) * f >> 10)
        x = (x * 1664525 + 1013904223) & 0x3FFFFFFF
        u = ((x >> 6) & 255) + ((x >> 14) & 255) + ((x >> 22) & 255)
        acc = a * s + b * c + (u + u - 765) * int(p[base + 4]) + (1 << 17)
        v = (acc >> 18) + int(p[base + 3])
        if v < 0:
            v = 0
        elif v > 4095:
            v = 4095
        out[i] = v
        ph += dph
        i += 1
        ch += 1
        base += 5
        if ch == nch:
            ch = 0
            base = _HDR
    p[3] = x


def fill_reference(buf, table, params, n):
    """Plain-Python twin of the viper kernel: same integers, same results."""
    nch = params[0]
    dph = params[2]
    x = params[3]
    ph = 0
    for i in range(n):
        k = _HDR + (i % nch) * _PER_CH
        a = params[k] - 0x20000000
        b = params[k + 1] - 0x20000000
        q = (ph + params[k + 2]) & _PHASE_MASK
        j = q >> 10
        f = q & 1023
        s0 = table[j]
        s = s0 - _SIN_ONE + ((table[(j + 1) & 1023] - s0) * f >> 10)
        c0 = table[(j + 256) & 1023]
        c = c0 - _SIN_ONE + ((table[(j + 257) & 1023] - c0) * f >> 10)
        x = _lcg(x)
        u = ((x >> 6) & 255) + ((x >> 14) & 255) + ((x >> 22) & 255)
        acc = a * s + b * c + (2 * u - _NOISE_MEAN) * params[k + 4] + (1 << 17)
        v = (acc >> _OUT_SHIFT) + params[k + 3]
        buf[i] = 0 if v < 0 else (4095 if v > 4095 else v)
        ph += dph
    params[3] = x


class AdcGen:
    """Fills the firmware's sample buffer from the panel's state.

    board: the board module (CHANNELS, ADC_FULL_SCALE_MV, ADC_SLOT_US). panel: a Panel; its
    params dict (PANEL; or params given here) says which load each load CT sees and gives the
    noise and bias. seed: the noise generator's start (30 bits).
    fill(buf, rounds, t0_us, t0_s=0): buf is array('H', >= rounds * nch), buf[r*nch + c] is
    channel c of round r, sampled at t0 + (r*nch + c) * slot_us, where t0 = t0_s s + t0_us us
    since the start. Give t0_s the whole seconds and t0_us the us within them: us since the
    start pass 2**30 (a heap int on a 32-bit port) after 18 minutes. The panel is read as it
    is: advance it to t0 first. Nothing is allocated per call (for currents under 2**19 mA and
    gains under 2**19, see setup()).
    """

    def __init__(self, board, panel, params=None, seed=12345):
        if params is None:
            params = panel.params
        self.panel = panel
        self.channels = board.CHANNELS
        self.nch = len(self.channels)
        self.slot_us = board.ADC_SLOT_US
        self.hz = panel.hz
        self.bias_counts = int(params.get("bias_counts", 2048))
        self.drift_counts = int(params.get("bias_drift_counts", 0))
        noise = params.get("noise_counts", 0)
        if not 0 <= noise <= 16:
            raise ValueError("noise_counts must be in 0..16, got %r" % (noise,))
        # Three uniform bytes summed and doubled: RMS 2 * 128 = 256 units per count of noise.
        self.noise_scale = int(noise * (1 << _OUT_SHIFT) / 256 + 0.5)
        self.table = sine_table()
        # CT faults: [start_s, dur_s, channel name], each reading the low rail (an open
        # burden: the firmware's meter sees no bias) from start_s for dur_s seconds of the
        # run, so the measurement is invalid then (the compliance log's "invalid" periods).
        names = [ch["name"] for ch in board.CHANNELS]
        self.faults = []
        for f in params.get("ct_faults", ()):
            if not (isinstance(f, (list, tuple)) and len(f) == 3 and f[2] in names
                    and f[0] >= 0 and f[1] > 0):
                raise ValueError("ct_faults: each must be [start_s, dur_s, channel of %s], "
                                 "got %r" % (names, f))
            self.faults.append((int(f[0]), int(f[0] + f[1]), names.index(f[2])))
        self.params = array("I", (0 for _ in range(_HDR + _PER_CH * self.nch)))
        self.params[0] = self.nch
        self.params[2] = self.slot_us * self.hz * (1 << _PHASE_BITS) // 1000000
        self.params[3] = seed & 0x3FFFFFFF
        # Per channel: counts (Q5) per mA RMS of peak amplitude, scaled by 2**16, and which
        # panel components it sees with which sign.
        fs_mv = board.ADC_FULL_SCALE_MV
        self.gain = []          # Q16 of Q5 counts per mA RMS (or per mV RMS for "v")
        self.sees = []          # tuple of (component, sign) per channel; None for "v"
        terms = []
        self._first = array("H", bytes(2 * (self.nch + 1)))    # channel c: terms first..
        for c, ch in enumerate(self.channels):
            if ch["kind"] == "v":
                adc_v_per_v = 1 / ch["volts_per_adc_volt"]
                self.sees.append(None)
            else:
                adc_v_per_v = ch["burden_ohm"] / ch["ct_ratio"]   # per A
                self.sees.append(self._components(ch, params))
            counts_per_unit = math.sqrt(2) * adc_v_per_v * 4096 / fs_mv  # per mA or per mV
            g = int(counts_per_unit * _AMP_Q * 65536 + 0.5)
            self.gain.append(g)
            self.params[_HDR + c * _PER_CH + 2] = 0
            self.params[_HDR + c * _PER_CH + 4] = self.noise_scale
            # a channel's a = sum(x * G_re) >> 30 and b = sum(x * G_im) >> 30 over what it sees:
            # x a current in mA (the supply's mV for "v"), G = sign * unit phasor (Q14) * g
            if self.sees[c] is None:
                terms.append((_VOLTS, _Q14 * g, 0))
            else:
                for comp, sign in self.sees[c]:
                    terms.append((comp, sign * panel.unit_re[comp] * g,
                                  sign * panel.unit_im[comp] * g))
            self._first[c + 1] = len(terms)
        # G as 3 limbs: G = g2 << 22 | g1 << 11 | g0 (g1, g0 0..2047), so |G| < 2**33
        self._terms = array("i", bytes(4 * _TERM * len(terms)))
        for i, (src, g_re, g_im) in enumerate(terms):
            k = i * _TERM
            self._terms[k] = src
            for j, g in ((1, g_re), (4, g_im)):
                self._terms[k + j] = g >> 2 * _LIMB
                self._terms[k + j + 1] = (g >> _LIMB) & _LIMB_MASK
                self._terms[k + j + 2] = g & _LIMB_MASK
        self._x = array("i", bytes(4 * (_VOLTS + 1)))
        self._x[_VOLTS] = panel.volts * 1000

    def _components(self, ch, params):
        name = ch["name"]
        legs = self.panel.legs
        if ch.get("mains"):
            leg = ch["leg"]
            sign = 1 if leg == "L1" else -1
            return tuple((k, sign) for k in (BASE_L1, BASE_L2, WATER_HEATER, EV)
                         if leg in legs[k])
        out = []
        for k, key in ((WATER_HEATER, "water_heater"), (EV, "ev")):
            if params[key].get("ct") == name:
                # clamped on the L1 wire, or on L2 for a load on L2 alone
                out.append((k, -1 if legs[k] == "L2" else 1))
        return tuple(out)

    def bias_at(self, t_ms, t_s=0):
        """Mid-rail bias in counts at t_s s + t_ms ms: the nominal bias plus a slow wander."""
        d = self.drift_counts
        if not d:
            return self.bias_counts
        if not 0 <= t_ms < 1000:
            k = t_ms // 1000
            t_s += k
            t_ms -= k * 1000
        r = t_s % _DRIFT1_S * 1000 + t_ms       # t mod the period, ms
        if r >= _DRIFT1_S * 1000:
            r -= _DRIFT1_S * 1000
        i1 = r * 32 // 190625
        r = t_s % _DRIFT2_S * 1000 + t_ms
        if r >= _DRIFT2_S * 1000:
            r -= _DRIFT2_S * 1000
        i2 = r * 16 // 343125
        t = self.table
        w = 3 * (t[i1] - _SIN_ONE) + 2 * (t[i2] - _SIN_ONE)       # |w| <= 5 * 8192
        return self.bias_counts + d * w // (5 * _SIN_ONE)

    def setup(self, t0_us, t0_s=0):
        """Load params with the panel's currents and the mains phase at t0_s s + t0_us us."""
        if not 0 <= t0_us < 1000000:
            k = t0_us // 1000000
            t0_s += k
            t0_us -= k * 1000000
        p = self.params
        bias = self.bias_at(t0_us // 1000, t0_s)
        # mains phase at t0: hz * t0 cycles, a whole number a second, so the phase is
        # (us * hz mod 10**6) * 2**20 // 10**6 (mod 2**20), and with x = 15625 q + r
        # (10**6 = 64 x 15625) that is q * 2**14 + r * 2**14 // 15625: under 2**28
        x = t0_us * self.hz % 1000000
        q = x // 15625
        ph0 = (q << 14) + ((x - q * 15625) << 14) // 15625
        xs = self._x
        ma = self.panel.ma
        for comp in range(_VOLTS):
            xs[comp] = ma[comp]
        terms = self._terms
        first = self._first
        for c in range(self.nch):
            # a = sum(x * G) >> 30 exactly, with G in 3 limbs and x = xh << 11 | xl:
            # x * G = xh*g2 << 33 + (xh*g1 + xl*g2) << 22 + (xh*g0 + xl*g1) << 11 + xl*g0.
            # Each product is under 2**22 for |x| < 2**19 mA (or mV) and |G| < 2**33
            # (gains under 2**19; the board's largest is 2.5e5), a channel's sums under 2**25.
            a3 = a2 = a1 = a0 = b3 = b2 = b1 = b0 = 0
            i = first[c] * _TERM
            end = first[c + 1] * _TERM
            while i < end:
                x = xs[terms[i]]
                xh = x >> _LIMB
                xl = x & _LIMB_MASK
                g2 = terms[i + 1]
                g1 = terms[i + 2]
                g0 = terms[i + 3]
                a3 += xh * g2
                a2 += xh * g1 + xl * g2
                a1 += xh * g0 + xl * g1
                a0 += xl * g0
                g2 = terms[i + 4]
                g1 = terms[i + 5]
                g0 = terms[i + 6]
                b3 += xh * g2
                b2 += xh * g1 + xl * g2
                b1 += xh * g0 + xl * g1
                b0 += xl * g0
                i += _TERM
            # carry up from the lowest limb; floor(sum / 2**30) = (a3 << 3) + (a2 + carry) >> 8
            a = (a3 << 3) + ((a2 + ((a1 + (a0 >> _LIMB)) >> _LIMB)) >> 8)
            b = (b3 << 3) + ((b2 + ((b1 + (b0 >> _LIMB)) >> _LIMB)) >> 8)
            # sum(x * G) = re * g, re and im Q14 mA RMS (mV for "v"); v(t) = |I| sqrt2
            # sin(wt + phi) = re' sin(wt) + im' cos(wt), so a = re, b = im, in Q5 counts.
            # |a| + |b| <= 2**17 bounds a*a + b*b by 2**34: the wide squares only beyond it
            if (a if a >= 0 else -a) + (b if b >= 0 else -b) > _AMP_MAX \
                    and a * a + b * b > _AMP_MAX * _AMP_MAX:
                # beyond two full swings: keep the phase, limit the amplitude (it clips
                # anyway); heap ints and floats here, on a channel clipping hard only
                m = math.sqrt(a * a + b * b)
                a = int(a * _AMP_MAX / m)
                b = int(b * _AMP_MAX / m)
            k = _HDR + c * _PER_CH
            p[k] = a + 0x20000000
            p[k + 1] = b + 0x20000000
            p[k + 2] = ph0
            p[k + 3] = bias

    def fill(self, buf, rounds, t0_us, t0_s=0):
        n = rounds * self.nch
        if len(buf) < n:
            raise ValueError("buffer holds %d samples, %d asked" % (len(buf), n))
        self.setup(t0_us, t0_s)
        self.params[1] = rounds
        _fill_viper(buf, self.table, self.params, n)
        for start, end, c in self.faults:
            if start <= t0_s + t0_us // 1000000 < end:
                for i in range(c, n, self.nch):
                    buf[i] = 0
