"""Metering kernels: per-channel sums over an interleaved ADC buffer, and RMS/power from them."""
# Three viper routines, each with a plain-Python twin (tests/rms_twin.py: never deployed, never
# imported by the firmware, so its code costs the board no RAM) that performs the same integer
# operations and raises OverflowError if any intermediate leaves the signed 32-bit range a
# viper int has on the ESP32 (the host's 64-bit viper ints would hide the wrap):
#   find_cycles  whole mains cycles in the window, from the voltage channel's crossings
#   accumulate   per channel: sum d, sum d*d, sum v*d (v interpolated to the channel's instant),
#                added to what acc holds: a measurement may be several windows (clear first)
#   finish       per channel: DC level, variance, RMS, real and apparent power, power factor
# All state lives in preallocated array('i') tables laid out by the C_, A_, K_, R_ and
# S_ offsets below (meter.py owns them); nothing here allocates.
# Every table entry a viper routine reads back is >= 0 (signed ones are stored with a bias):
# on a 64-bit host viper's ptr32 loads zero-extend, on the ESP32 they do not, and biased
# entries give the same arithmetic on both.
# Over 500 lines because each kernel's bounds proof sits beside its code (the comments are
# most of it): splitting them apart would separate a viper loop from the argument that its
# int32 sums cannot wrap.
#
# Bounds (12-bit samples x in 0..4095, clamped on read; centring offset off in 0..4095):
#   d = x - off, |d| <= 4095;  d*d <= 16_769_025 < 2**24
#   vq (voltage interpolated between two samples, quarter counts) |vq| <= 16_380 < 2**14
#   one chunk of _CHUNK = 32 rounds: sum d*d <= 536_608_800 < 2**29,
#                                    |sum vq*d| <= 2_146_435_200 < 2**31 - 1
#   chunk sums fold into (hi, lo) pairs, lo in 0..2**24-1, so S = hi * 2**24 + lo; with
#   n <= MAX_ROUNDS = 2048 rounds in all the windows summed into one acc (meter.py checks), |hi| < 2**13 and |sum d| <= 8_386_560 < 2**23, |64 sum d| < 2**29
#   means are divided out 8 bits at a time: remainder < n <= 2**11, so (r << 8) | byte < 2**19
#   Q6 means (value * 64): mean d*d <= 4095**2 * 64 = 1_073_217_600 < 2**30, same for v*d
#   RMS: isqrt of a Q6 variance scaled by 4**t below 2**30, so rq < 2**15
#   unit conversion (mulshift): x normalised below 2**15, times m < 2**15, product < 2**30,
#   plus half of 2**sh (sh <= 30) to round; shifts of 31 or more give 0 (a shift count is
#   taken mod 32 on the ESP32, so they are never issued)
# Outputs are bounded by the scales metercal.py accepts (<= 256 mA or mV per count):
#   mA, mV <= 4095 * 256 < 2**21; W, VA <= 2 * 4095**2 * 256 * 256 / 1e6 < 2**22.
import micropython
from micropython import const

MAX_ROUNDS = const(2048)    # largest window, rounds (20 cycles at 50 Hz); bounds rely on it
_CHUNK = const(32)          # rounds per partial sum

# per-channel kernel settings (array 'i', NC per channel)
NC = const(4)
C_OFF = const(0)           # centring offset (DC bias estimate), counts
C_PWR = const(1)           # 1: accumulate v*d for this channel
C_K = const(2)             # voltage sample used: round r + k - K_BIAS ...
C_A = const(3)             # ... interpolated a/64 of the way to the next round
K_BIAS = const(256)

# per-channel sums (array 'i', NA per channel)
NA = const(6)
A_SD = const(0)            # sum d + SD_BIAS
A_S2H = const(1)
A_S2L = const(2)
A_SPH = const(3)           # + SPH_BIAS
A_SPL = const(4)
A_CLIP = const(5)          # samples on a rail (0 or 4095)
SD_BIAS = const(0x1000000) # > 4095 * MAX_ROUNDS
SPH_BIAS = const(0x10000)  # > 4095 * 16380 * MAX_ROUNDS >> 24

# per-channel calibration for finish (array 'i', NK per channel)
NK = const(14)
K_KIND = const(0)          # 0 current (CT), 1 voltage
K_M = const(1)             # RMS scale: units = rq * m >> (s + t), rq in Q3 counts
K_S = const(2)
K_WM = const(3)            # watts = P6 * wm >> ws, P6 = 64 * mean(v * d) in counts**2
K_WS = const(4)
K_NEG = const(5)           # 1 where the channel's voltage is -v (leg L2), else 0
K_NOISE = const(6)         # noise variance subtracted, Q6 counts**2
K_FLOOR = const(7)         # below this many mA the channel reads 0
K_FS = const(8)            # full-scale RMS, Q3 counts: a clipping channel reads at least this
K_EPM = const(9)           # estimated watts = mA * epm >> eps (nominal volts, assumed PF)
K_EPS = const(10)
K_ESM = const(11)          # estimated VA = mA * esm >> ess
K_ESS = const(12)
K_EPF = const(13)          # assumed PF x 1000

# per-channel results of finish (array 'i', NR per channel)
NR = const(5)
R_DC = const(0)            # DC level, Q4 counts
R_VAR = const(1)           # variance before noise subtraction, Q6 counts**2
R_RQ = const(2)            # RMS after noise subtraction, Q(3 + t) counts
R_T = const(3)
R_FLAGS = const(4)         # F_RAIL | F_CLIP

# window status written by finish (array 'i', NS)
NS = const(3)
S_FLAGS = const(0)         # F_* of all channels, plus F_NOV
S_FIRST = const(1)         # first channel with a rail or clip flag, -1 none
S_MODE = const(2)          # 1 powers from the voltage channel, 0 estimated

F_RAIL = const(1)
F_CLIP = const(2)
F_NOV = const(4)

_RAIL_LO_Q4 = const(8192)   # a DC level below 512 counts or above 3583 (1/8 and 7/8 of the
_RAIL_HI_Q4 = const(57328)  # range) is a rail: broken bias or a floating input
_PF_NORM = const(0x200000)  # reduce P, S below 2**21 so P * 1000 fits


@micropython.viper
def find_cycles(buf, nch: int, rounds: int, vch: int, level: int, hyst: int, win) -> int:
    """Crossings of `level` on channel vch in the direction of the first one (up or down,
    with hyst counts of hysteresis); win[0], win[1] = first, last (the rounds at or just
    after them); win[2], win[3] = how far before those rounds each crossing lay, in 1/256
    round (linear between the two samples). Returns whole cycles. Either direction: a window
    of 1.5 cycles and a margin always holds one whole cycle."""
    b = ptr16(buf)
    w = ptr32(win)
    low = level - hyst
    high = level + hyst
    up_armed = 0
    down_armed = 0
    way = 0                     # 1 up, 2 down: the first crossing's
    first = -1
    last = -1
    f_first = 0
    f_last = 0
    count = 0
    j = vch
    r = 0
    prev = 0
    while r < rounds:
        x = int(b[j])
        hit = 0
        if x < low:
            up_armed = 1
        elif up_armed != 0 and x >= level:
            up_armed = 0
            if way != 2:
                hit = 1
                way = 1
        if x > high:
            down_armed = 1
        elif down_armed != 0 and x < level:
            down_armed = 0
            if way != 1:
                hit = 1
                way = 2
        if hit != 0:
            # the previous sample lay on the other side of level (r >= 1: arming took one),
            # so the step is >= 1 count; |x - level| <= 4095, shifted < 2**20
            if way == 1:
                f = ((x - level) << 8) // (x - prev)
            else:
                f = ((level - x) << 8) // (prev - x)
            if first < 0:
                first = r
                f_first = f
            last = r
            f_last = f
            count += 1
        prev = x
        j += nch
        r += 1
    w[0] = first
    w[1] = last
    w[2] = f_first
    w[3] = f_last
    if count < 2:
        return 0
    return count - 1


@micropython.viper
def clear(acc, nch: int):
    """acc holds the sums of no rounds at all (biased entries at their bias)."""
    a = ptr32(acc)
    i = 0
    while i < nch * NA:
        a[i] = 0
        i += 1
    c = 0
    while c < nch:
        a[c * NA + A_SD] = SD_BIAS
        a[c * NA + A_SPH] = SPH_BIAS
        c += 1


@micropython.viper
def accumulate(buf, nch: int, rounds: int, r0: int, r1: int, vch: int, chans, acc):
    """Adds the sums of rounds r0..r1-1 of every channel to acc (see the bounds at the top)."""
    b = ptr16(buf)
    ch = ptr32(chans)
    a = ptr32(acc)
    offv = 0
    if vch >= 0:
        offv = ch[vch * NC + C_OFF]
    rmax = rounds - 1
    c = 0
    while c < nch:
        cb = c * NC
        off = ch[cb + C_OFF]
        pwr = ch[cb + C_PWR]
        if vch < 0:
            pwr = 0
        k = ch[cb + C_K] - K_BIAS
        fa = ch[cb + C_A]
        fb = 64 - fa
        ab = c * NA
        sd = a[ab + A_SD] - SD_BIAS
        s2h = a[ab + A_S2H]
        s2l = a[ab + A_S2L]
        sph = a[ab + A_SPH] - SPH_BIAS
        spl = a[ab + A_SPL]
        clip = a[ab + A_CLIP]
        r = r0
        j = r0 * nch + c
        while r < r1:
            re = r + _CHUNK
            if re > r1:
                re = r1
            s2 = 0
            sp = 0
            while r < re:
                x = int(b[j])
                if x >= 4095:
                    x = 4095
                    clip += 1
                elif x == 0:
                    clip += 1
                d = x - off
                sd += d
                s2 += d * d
                if pwr != 0:
                    r2 = r + k
                    if r2 < 0:
                        r2 = 0
                    elif r2 > rmax:
                        r2 = rmax
                    v0 = int(b[r2 * nch + vch])
                    r2 = r + k + 1
                    if r2 < 0:
                        r2 = 0
                    elif r2 > rmax:
                        r2 = rmax
                    v1 = int(b[r2 * nch + vch])
                    if v0 > 4095:
                        v0 = 4095
                    if v1 > 4095:
                        v1 = 4095
                    vq = ((v0 - offv) * fb + (v1 - offv) * fa + 8) >> 4
                    sp += vq * d
                j += nch
                r += 1
            s2l += s2
            s2h += s2l >> 24
            s2l &= 0xFFFFFF
            sph += sp >> 24
            spl += sp & 0xFFFFFF
            sph += spl >> 24
            spl &= 0xFFFFFF
        a[ab + A_SD] = sd + SD_BIAS
        a[ab + A_S2H] = s2h
        a[ab + A_S2L] = s2l
        a[ab + A_SPH] = sph + SPH_BIAS
        a[ab + A_SPL] = spl
        a[ab + A_CLIP] = clip
        c += 1


@micropython.viper
def finish(n: int, nch: int, vch: int, mode: int, min_vrms: int, cal, acc, chans, res,
           irms, pw, sva, pf, status) -> int:
    """RMS, power and flags from acc over n rounds; tracks offsets in chans. Returns mV RMS."""
    k = ptr32(cal)
    a = ptr32(acc)
    ch = ptr32(chans)
    rs = ptr32(res)
    oi = ptr32(irms)
    op = ptr32(pw)
    osv = ptr32(sva)
    opf = ptr32(pf)
    st = ptr32(status)
    flags = 0
    first = -1
    vrms = 0
    # pass 1, every channel: DC level, variance, RMS, rail and clip flags, offset tracking
    c = 0
    while c < nch:
        ab = c * NA
        kb = c * NK
        cb = c * NC
        rb = c * NR
        sd = a[ab + A_SD] - SD_BIAS
        off = ch[cb + C_OFF]
        dc = off * 16 + (sd * 16) // n
        m6 = (sd * 64) // n
        if m6 > -32768 and m6 < 32768:
            msq = (m6 * m6) >> 6
        else:
            m3 = m6 >> 3
            msq = m3 * m3
        # mean square, Q6: (hi * 2**24 + lo) * 64 // n, 8 bits at a time
        hi = a[ab + A_S2H]
        lo = a[ab + A_S2L]
        q = hi // n
        r = hi - q * n
        num = (r << 8) | ((lo >> 16) & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = (r << 8) | ((lo >> 8) & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = (r << 8) | (lo & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = r << 6
        q = (q << 6) | (num // n)
        var = q - msq
        if var < 0:
            var = 0
        rs[rb + R_DC] = dc
        rs[rb + R_VAR] = var
        kind = k[kb + K_KIND]
        if kind == 0:
            var -= k[kb + K_NOISE]
            if var < 0:
                var = 0
        t = 0
        while var < 0x10000000 and t < 8:
            var <<= 2
            t += 1
        # integer square root, var < 2**30
        rq = 0
        bit = 0x10000000
        while bit > var:
            bit >>= 2
        while bit != 0:
            if var >= rq + bit:
                var -= rq + bit
                rq = (rq >> 1) + bit
            else:
                rq >>= 1
            bit >>= 2
        rs[rb + R_RQ] = rq
        rs[rb + R_T] = t
        f = 0
        if dc < _RAIL_LO_Q4 or dc > _RAIL_HI_Q4:
            f = F_RAIL
        elif a[ab + A_CLIP] > 0:
            f = F_CLIP
        rs[rb + R_FLAGS] = f
        if f != 0:
            flags |= f
            if first < 0:
                first = c
        if kind == 1:
            # mulshift: vrms = rq * m >> (s + t)
            x = rq
            sh = k[kb + K_S] + t
            while x >= 0x8000:
                x >>= 1
                sh -= 1
            x *= k[kb + K_M]
            if sh > 30:
                vrms = 0
            elif sh > 0:
                vrms = (x + (1 << (sh - 1))) >> sh
            else:
                vrms = x << (0 - sh)
        off = (dc + 8) >> 4
        if off < 0:
            off = 0
        elif off > 4095:
            off = 4095
        ch[cb + C_OFF] = off
        c += 1
    if vch < 0:
        mode = 0
    elif mode != 0 and vrms < min_vrms:
        mode = 0
    if vch >= 0 and mode == 0:
        flags |= F_NOV
    rqv = 0
    tv = 0
    sdv = 0
    if mode != 0:
        rqv = rs[vch * NR + R_RQ]
        tv = rs[vch * NR + R_T]
        sdv = a[vch * NA + A_SD] - SD_BIAS
    # pass 2, current channels: clipping, mA, noise floor, W, VA, PF
    c = 0
    while c < nch:
        kb = c * NK
        if k[kb + K_KIND] != 0:
            oi[c] = 0
            op[c] = 0
            osv[c] = 0
            opf[c] = 0
            c += 1
            continue
        ab = c * NA
        rb = c * NR
        rq = rs[rb + R_RQ]
        t = rs[rb + R_T]
        clipped = rs[rb + R_FLAGS] & F_CLIP
        if clipped != 0:
            rq >>= t
            t = 0
            if rq < k[kb + K_FS]:
                rq = k[kb + K_FS]
        x = rq
        sh = k[kb + K_S] + t
        while x >= 0x8000:
            x >>= 1
            sh -= 1
        x *= k[kb + K_M]
        if sh > 30:
            ima = 0
        elif sh > 0:
            ima = (x + (1 << (sh - 1))) >> sh
        else:
            ima = x << (0 - sh)
        if ima < k[kb + K_FLOOR]:
            oi[c] = 0
            op[c] = 0
            osv[c] = 0
            opf[c] = 0
            c += 1
            continue
        oi[c] = ima
        if mode == 0:
            x = ima
            sh = k[kb + K_EPS]
            while x >= 0x8000:
                x >>= 1
                sh -= 1
            x *= k[kb + K_EPM]
            if sh > 30:
                op[c] = 0
            elif sh > 0:
                op[c] = (x + (1 << (sh - 1))) >> sh
            else:
                op[c] = x << (0 - sh)
            x = ima
            sh = k[kb + K_ESS]
            while x >= 0x8000:
                x >>= 1
                sh -= 1
            x *= k[kb + K_ESM]
            if sh > 30:
                osv[c] = 0
            elif sh > 0:
                osv[c] = (x + (1 << (sh - 1))) >> sh
            else:
                osv[c] = x << (0 - sh)
            opf[c] = k[kb + K_EPF]
            c += 1
            continue
        # real power, Q6: (sph * 2**24 + spl) * 16 // n (vq is in quarter counts), sign apart
        hi = a[ab + A_SPH] - SPH_BIAS
        lo = a[ab + A_SPL]
        neg = 0
        if hi < 0:
            neg = 1
            if lo == 0:
                hi = 0 - hi
            else:
                hi = 0 - hi - 1
                lo = 0x1000000 - lo
        q = hi // n
        r = hi - q * n
        num = (r << 8) | ((lo >> 16) & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = (r << 8) | ((lo >> 8) & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = (r << 8) | (lo & 0xFF)
        q = (q << 8) | (num // n)
        r = num - (num // n) * n
        num = r << 4
        q = (q << 4) | (num // n)
        if neg != 0:
            q = 0 - q
        # remove the product of the DC residuals: mean((v - mv)(i - mi)) = mean(v i) - mv mi
        mv = (sdv * 64) // n
        mi = ((a[ab + A_SD] - SD_BIAS) * 64) // n
        if mv > -32768 and mv < 32768 and mi > -32768 and mi < 32768:
            q -= (mv * mi) >> 6
        else:
            q -= (mv >> 3) * (mi >> 3)
        neg = 0
        if q < 0:
            neg = 1
            q = 0 - q
        # apparent power from the RMS values, Q(6 + tv + t); PF from P6 against S6
        prod = rqv * rq
        s6 = prod >> (tv + t)
        p6 = q
        while s6 >= _PF_NORM:
            s6 >>= 1
            p6 >>= 1
        if s6 == 0:
            pfx = 0
        elif p6 >= s6:
            pfx = 1000
        else:
            pfx = (p6 * 1000) // s6
        x = prod
        sh = k[kb + K_WS] + tv + t
        while x >= 0x8000:
            x >>= 1
            sh -= 1
        x *= k[kb + K_WM]
        if sh > 30:
            s_va = 0
        elif sh > 0:
            s_va = (x + (1 << (sh - 1))) >> sh
        else:
            s_va = x << (0 - sh)
        if clipped != 0:
            # the measured P is short by the clipped peaks: P = S * PF at the raised current
            x = s_va
            sh = 14
            while x >= 0x8000:
                x >>= 1
                sh -= 1
            x *= (pfx * 16384) // 1000
            if sh > 30:
                p_w = 0
            elif sh > 0:
                p_w = (x + (1 << (sh - 1))) >> sh
            else:
                p_w = x << (0 - sh)
        else:
            x = q
            sh = k[kb + K_WS]
            while x >= 0x8000:
                x >>= 1
                sh -= 1
            x *= k[kb + K_WM]
            if sh > 30:
                p_w = 0
            elif sh > 0:
                p_w = (x + (1 << (sh - 1))) >> sh
            else:
                p_w = x << (0 - sh)
        if k[kb + K_NEG] != 0:
            neg ^= 1
        if neg != 0:
            p_w = 0 - p_w
            pfx = 0 - pfx
        op[c] = p_w
        osv[c] = s_va
        opf[c] = pfx
        c += 1
    st[S_FLAGS] = flags
    st[S_FIRST] = first
    st[S_MODE] = mode
    return vrms
