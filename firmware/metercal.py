"""Configuring a meter.Meter: validating its channels and settings, calibration, and the
tables rms.py reads. Meter's methods import it to configure and the app drops it after boot,
so this code is not in RAM while the firmware only measures (meter.Meter.process)."""
import math
from array import array
from micropython import const
import rms

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


def setup(meter, channels, slot_us, nominal_volts, hz, round_us=None, full_scale_mv=3300,
          estimate_pf=0.95, min_volts_pct=50, implausible_pct=80, implausible_margin_ma=2000):
    """Validate Meter(...)'s arguments and give meter its settings, tables and outputs."""
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
    meter.names = tuple(ch["name"] for ch in channels)
    meter._nch = nch
    meter._channels = channels
    meter._slot_us = slot_us
    meter._round_us = round_us
    meter._hz = hz
    meter._nominal = nominal_volts
    meter._nominal_mv = int(nominal_volts * 1000)
    meter._min_vrms_mv = meter._nominal_mv * min_volts_pct // 100
    meter._full_scale_v = full_scale_mv / 1000
    meter._impl_pct = int(implausible_pct)
    meter._impl_margin = int(implausible_margin_ma)
    # rounds per nominal cycle, x256: the timed window when there is no voltage
    meter._rpc256 = int(256 * 1000000 / hz / round_us + 0.5)
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
    meter._vch = vch
    meter._voff = vch * rms.NC + rms.C_OFF if vch >= 0 else 0
    meter._mains = tuple(mains)
    meter._loads = tuple(loads)
    # calibration, per channel
    meter._gain = [1.0] * nch
    meter._phase = [0.0] * nch
    meter._noise6 = [0] * nch
    meter._floor = [int(ch.get("rating_a", 20) * 5) for ch in channels]  # 0.5 % of rating
    meter._epf = [estimate_pf] * nch
    meter._hyst = 64
    # kernel tables (layouts in rms.py) and outputs, allocated once
    meter._chans = array("i", [0] * (nch * rms.NC))
    meter._acc = array("i", [0] * (nch * rms.NA))
    meter._n = meter._n256 = meter._cycles = meter._first = 0   # what begin() starts
    meter._mode = -1
    meter._cal = array("i", [0] * (nch * rms.NK))
    meter._res = array("i", [0] * (nch * rms.NR))
    meter._status = array("i", [0] * rms.NS)
    meter._win = array("i", [0, 0, 0, 0])
    for c in range(nch):
        meter._chans[c * rms.NC + rms.C_OFF] = _MID_RAIL
    meter.irms_ma = array("i", [0] * nch)
    meter.p_w = array("i", [0] * nch)
    meter.s_va = array("i", [0] * nch)
    meter.pf_x1000 = array("i", [0] * nch)
    meter.leg_ma = array("i", [0, 0])
    meter.leg_w = array("i", [0, 0])
    meter.total_w = 0
    meter.vrms_mv = 0
    meter.valid = False
    meter.faults = 0
    meter.fault_channel = -1
    meter.estimated = vch < 0
    meter.cycles = 0
    meter.first_round = 0
    meter.window_rounds = 0
    for c in range(nch):
        _apply(meter, c)


def _per_count(meter, c):
    """mA (CT) or mV (voltage) per ADC count, with the channel's gain."""
    ch = meter._channels[c]
    volts_per_count = meter._full_scale_v / _ADC_COUNTS
    if ch["kind"] == "v":
        pc = volts_per_count * ch["volts_per_adc_volt"] * 1000
    else:
        pc = volts_per_count / ch["burden_ohm"] * ch["ct_ratio"] * 1000
    pc *= meter._gain[c]
    if not 0 < pc <= _MAX_PER_COUNT:
        raise ValueError("%s: %.3g %s per count is outside 0..%d"
                         % (ch["name"], pc, "mV" if ch["kind"] == "v" else "mA",
                            _MAX_PER_COUNT))
    return pc


def _apply(meter, c):
    """Recompute channel c's kernel and calibration entries from its settings."""
    ch = meter._channels[c]
    chans = meter._chans
    cal = meter._cal
    cb = c * rms.NC
    kb = c * rms.NK
    vch = meter._vch
    pc = _per_count(meter, c)
    m, s = _scale(pc / 8)               # rms.finish gives RMS in eighths of a count
    cal[kb + rms.K_M] = m
    cal[kb + rms.K_S] = s
    if ch["kind"] == "v":
        cal[kb + rms.K_KIND] = 1
        chans[cb + rms.C_PWR] = 0
        peak = int(meter._nominal * 1.414 * 1000 / pc)
        meter._hyst = min(max(peak // 8, 4), 512)    # crossing hysteresis, counts
        return
    cal[kb + rms.K_KIND] = 0
    leg = _LEG_CODES[ch["leg"]]
    vfactor = 2 if leg == 3 else 1      # a 240 V load sees 2v
    cal[kb + rms.K_NEG] = 1 if leg == 2 else 0
    cal[kb + rms.K_NOISE] = meter._noise6[c]
    cal[kb + rms.K_FLOOR] = meter._floor[c]
    fs_counts = max(_MID_RAIL / 1.41421, ch.get("rating_a", 0) * 1000 / pc)
    cal[kb + rms.K_FS] = min(int(fs_counts * 8 + 0.5), 32767)
    epf = meter._epf[c]
    m, s = _scale(meter._nominal * vfactor * epf / 1000)
    cal[kb + rms.K_EPM] = m
    cal[kb + rms.K_EPS] = s
    m, s = _scale(meter._nominal * vfactor / 1000)
    cal[kb + rms.K_ESM] = m
    cal[kb + rms.K_ESS] = s
    cal[kb + rms.K_EPF] = int(epf * 1000 + 0.5)
    if vch < 0:
        chans[cb + rms.C_PWR] = 0
        return
    # Where in time to take the voltage for this channel: sampled (c - vch) slots later,
    # corrected by the two channels' phase lags
    delay_us = ((c - vch) * meter._slot_us
                + (meter._phase[vch] - meter._phase[c]) / 360 * 1e6 / meter._hz)
    f = delay_us / meter._round_us
    k = int(f // 1)
    if not -rms.K_BIAS < k < rms.K_BIAS:
        raise ValueError("%s: voltage shift of %d rounds is out of range" % (ch["name"], k))
    a = int((f - k) * 64 + 0.5)
    if a == 64:
        k += 1
        a = 0
    # W per (64 * count**2). The voltage between two rounds is a straight line, which
    # shrinks a sine: at 60 Hz and 210 us a round, by 0.04-0.08 % midway, and every watt
    # with it; divided back out at the mains frequency.
    m, s = _scale(_per_count(meter, vch) * pc / 1e6 * vfactor / 64
                  / _interp_gain(a / 64, 2 * math.pi * meter._hz * meter._round_us / 1e6))
    cal[kb + rms.K_WM] = m
    cal[kb + rms.K_WS] = s
    chans[cb + rms.C_PWR] = 1
    chans[cb + rms.C_K] = k + rms.K_BIAS
    chans[cb + rms.C_A] = a


def _interp_gain(frac, step_rad):
    """The amplitude a sine keeps when read a fraction `frac` of the way along the straight
    line between two samples `step_rad` apart: |1 - frac + frac * e^(j step_rad)|."""
    re = 1 - frac + frac * math.cos(step_rad)
    im = frac * math.sin(step_rad)
    return math.sqrt(re * re + im * im)


def calibrate(meter, index, gain=None, offset=None, phase_deg=None, noise_counts=None,
              floor_ma=None, estimate_pf=None):
    """Set channel index's calibration; None leaves a setting as it is.

    gain: multiplies the board's scale (0.5..2). offset: DC bias in counts to start
    from (it is tracked every window after). phase_deg: how far this channel's signal
    lags the true one at mains frequency (-30..30). noise_counts: RMS noise to subtract.
    floor_ma: a CT reading below this reads 0. estimate_pf: PF assumed without voltage.
    """
    if not 0 <= index < meter._nch:
        raise ValueError("index must be 0..%d, got %r" % (meter._nch - 1, index))
    name = meter.names[index]
    if gain is not None:
        if not 0.5 <= gain <= 2.0:
            raise ValueError("%s: gain must be 0.5..2, got %r" % (name, gain))
        old = meter._gain[index]
        meter._gain[index] = float(gain)
        try:
            _per_count(meter, index)
        except ValueError:
            meter._gain[index] = old
            raise
    if offset is not None:
        if not 0 <= offset <= 4095:
            raise ValueError("%s: offset must be 0..4095 counts, got %r" % (name, offset))
        meter._chans[index * rms.NC + rms.C_OFF] = int(offset)
    if phase_deg is not None:
        if not -30 <= phase_deg <= 30:
            raise ValueError("%s: phase_deg must be -30..30, got %r" % (name, phase_deg))
        meter._phase[index] = float(phase_deg)
    if noise_counts is not None:
        if not 0 <= noise_counts <= 64:
            raise ValueError("%s: noise_counts must be 0..64, got %r" % (name, noise_counts))
        meter._noise6[index] = int(noise_counts * noise_counts * 64 + 0.5)
    if floor_ma is not None:
        if not 0 <= floor_ma <= 100000:
            raise ValueError("%s: floor_ma must be 0..100000, got %r" % (name, floor_ma))
        meter._floor[index] = int(floor_ma)
    if estimate_pf is not None:
        if not 0 < estimate_pf <= 1:
            raise ValueError("%s: estimate_pf must be 0..1, got %r" % (name, estimate_pf))
        meter._epf[index] = float(estimate_pf)
    if index == meter._vch:
        for c in range(meter._nch):  # every CT's power depends on the voltage channel
            _apply(meter, c)
    else:
        _apply(meter, index)


def calibration(meter, index):
    """Channel index's settings, for the console."""
    return {"name": meter.names[index], "gain": meter._gain[index],
            "offset": meter._chans[index * rms.NC + rms.C_OFF],
            "phase_deg": meter._phase[index],
            "noise_counts": (meter._noise6[index] / 64) ** 0.5,
            "floor_ma": meter._floor[index], "estimate_pf": meter._epf[index]}
