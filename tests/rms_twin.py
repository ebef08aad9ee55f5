"""Plain-Python twins of rms.py's viper kernels: the same integer steps, with every
intermediate checked against the ESP32's signed 32-bit viper int. For the tests and the
bench; the firmware never imports it (its code would cost the board ~3 KB of RAM)."""
from array import array
from micropython import const

from rms import *  # noqa: F403 (the table layouts: NC, C_OFF, ..., F_NOV)

# rms.py's private bounds, same values (tests/test_rms.py checks they match).
_CHUNK = const(32)
_RAIL_LO_Q4 = const(8192)
_RAIL_HI_Q4 = const(57328)
_PF_NORM = const(0x200000)

_I32_MIN = -0x80000000
_I32_MAX = 0x7FFFFFFF


def _i32(x):
    if x < _I32_MIN or x > _I32_MAX:
        raise OverflowError("kernel intermediate %d leaves int32" % x)
    return x


def find_cycles_py(buf, nch, rounds, vch, level, hyst, win):
    low = _i32(level - hyst)
    high = _i32(level + hyst)
    up_armed = down_armed = 0
    way = 0
    first = -1
    last = -1
    f_first = f_last = 0
    count = 0
    j = vch
    prev = 0
    for r in range(rounds):
        x = buf[j]
        hit = False
        if x < low:
            up_armed = 1
        elif up_armed and x >= level:
            up_armed = 0
            if way != 2:
                hit, way = True, 1
        if x > high:
            down_armed = 1
        elif down_armed and x < level:
            down_armed = 0
            if way != 1:
                hit, way = True, 2
        if hit:
            if way == 1:
                f = _i32((x - level) << 8) // (x - prev)
            else:
                f = _i32((level - x) << 8) // (prev - x)
            if first < 0:
                first, f_first = r, f
            last, f_last = r, f
            count += 1
        prev = x
        j = _i32(j + nch)
    win[0] = first
    win[1] = last
    win[2] = f_first
    win[3] = f_last
    return count - 1 if count >= 2 else 0


def clear_py(acc, nch):
    for c in range(nch):
        acc[c * NA:(c + 1) * NA] = array("i", [SD_BIAS, 0, 0, SPH_BIAS, 0, 0])


def accumulate_py(buf, nch, rounds, r0, r1, vch, chans, acc):
    offv = chans[vch * NC + C_OFF] if vch >= 0 else 0
    rmax = rounds - 1
    for c in range(nch):
        cb = c * NC
        off = chans[cb + C_OFF]
        pwr = chans[cb + C_PWR] if vch >= 0 else 0
        k = chans[cb + C_K] - K_BIAS
        fa = chans[cb + C_A]
        fb = 64 - fa
        ab = c * NA
        sd = acc[ab + A_SD] - SD_BIAS
        s2h, s2l = acc[ab + A_S2H], acc[ab + A_S2L]
        sph = acc[ab + A_SPH] - SPH_BIAS
        spl, clip = acc[ab + A_SPL], acc[ab + A_CLIP]
        r = r0
        j = r0 * nch + c
        while r < r1:
            re = min(r + _CHUNK, r1)
            s2 = sp = 0
            while r < re:
                x = buf[j]
                if x >= 4095:
                    x = 4095
                    clip += 1
                elif x == 0:
                    clip += 1
                d = x - off
                sd = _i32(sd + d)
                s2 = _i32(s2 + _i32(d * d))
                if pwr:
                    v0 = min(buf[min(max(r + k, 0), rmax) * nch + vch], 4095)
                    v1 = min(buf[min(max(r + k + 1, 0), rmax) * nch + vch], 4095)
                    t = _i32(_i32(_i32((v0 - offv) * fb) + _i32((v1 - offv) * fa)) + 8)
                    vq = t >> 4
                    sp = _i32(sp + _i32(vq * d))
                j = _i32(j + nch)
                r += 1
            s2l = _i32(s2l + s2)
            s2h = _i32(s2h + (s2l >> 24))
            s2l &= 0xFFFFFF
            sph = _i32(sph + (sp >> 24))
            spl = _i32(spl + (sp & 0xFFFFFF))
            sph = _i32(sph + (spl >> 24))
            spl &= 0xFFFFFF
        acc[ab + A_SD] = sd + SD_BIAS
        acc[ab + A_S2H] = s2h
        acc[ab + A_S2L] = s2l
        acc[ab + A_SPH] = sph + SPH_BIAS
        acc[ab + A_SPL] = spl
        acc[ab + A_CLIP] = clip


def _div_py(hi, lo, n, e):
    """floor((hi * 2**24 + lo) * 2**e / n) for hi >= 0, as finish does it."""
    q = hi // n
    r = hi - q * n
    for sh in (16, 8, 0):
        num = _i32((r << 8) | ((lo >> sh) & 0xFF))
        q = _i32((_i32(q << 8)) | (num // n))
        r = num - (num // n) * n
    num = _i32(r << e)
    return _i32(_i32(q << e) | (num // n))


def _mulshift_py(x, m, sh):
    while x >= 0x8000:
        x >>= 1
        sh -= 1
    x = _i32(x * m)
    if sh > 30:
        return 0
    if sh > 0:
        return _i32(x + (1 << (sh - 1))) >> sh
    return _i32(x << -sh)


def _isqrt_py(v):
    rq = 0
    bit = 0x10000000
    while bit > v:
        bit >>= 2
    while bit:
        if v >= _i32(rq + bit):
            v -= rq + bit
            rq = (rq >> 1) + bit
        else:
            rq >>= 1
        bit >>= 2
    return rq


def finish_py(n, nch, vch, mode, min_vrms, cal, acc, chans, res, irms, pw, sva, pf, status):
    flags = 0
    first = -1
    vrms = 0
    for c in range(nch):
        ab, kb, cb, rb = c * NA, c * NK, c * NC, c * NR
        sd = acc[ab + A_SD] - SD_BIAS
        off = chans[cb + C_OFF]
        dc = _i32(off * 16 + _i32(sd * 16) // n)
        m6 = _i32(sd * 64) // n
        if m6 > -32768 and m6 < 32768:
            msq = _i32(m6 * m6) >> 6
        else:
            msq = _i32((m6 >> 3) * (m6 >> 3))
        var = max(_i32(_div_py(acc[ab + A_S2H], acc[ab + A_S2L], n, 6) - msq), 0)
        res[rb + R_DC] = dc
        res[rb + R_VAR] = var
        kind = cal[kb + K_KIND]
        if kind == 0:
            var = max(var - cal[kb + K_NOISE], 0)
        t = 0
        while var < 0x10000000 and t < 8:
            var = _i32(var << 2)
            t += 1
        rq = _isqrt_py(var)
        res[rb + R_RQ] = rq
        res[rb + R_T] = t
        f = 0
        if dc < _RAIL_LO_Q4 or dc > _RAIL_HI_Q4:
            f = F_RAIL
        elif acc[ab + A_CLIP] > 0:
            f = F_CLIP
        res[rb + R_FLAGS] = f
        if f:
            flags |= f
            if first < 0:
                first = c
        if kind == 1:
            vrms = _mulshift_py(rq, cal[kb + K_M], cal[kb + K_S] + t)
        chans[cb + C_OFF] = min(max((dc + 8) >> 4, 0), 4095)
    if vch < 0 or (mode and vrms < min_vrms):
        mode = 0
    if vch >= 0 and not mode:
        flags |= F_NOV
    rqv = tv = sdv = 0
    if mode:
        rqv = res[vch * NR + R_RQ]
        tv = res[vch * NR + R_T]
        sdv = acc[vch * NA + A_SD] - SD_BIAS
    for c in range(nch):
        kb, ab, rb = c * NK, c * NA, c * NR
        irms[c] = pw[c] = sva[c] = pf[c] = 0
        if cal[kb + K_KIND] != 0:
            continue
        rq = res[rb + R_RQ]
        t = res[rb + R_T]
        clipped = res[rb + R_FLAGS] & F_CLIP
        if clipped:
            rq = max(rq >> t, cal[kb + K_FS])
            t = 0
        ima = _mulshift_py(rq, cal[kb + K_M], cal[kb + K_S] + t)
        if ima < cal[kb + K_FLOOR]:
            continue
        irms[c] = ima
        if not mode:
            pw[c] = _mulshift_py(ima, cal[kb + K_EPM], cal[kb + K_EPS])
            sva[c] = _mulshift_py(ima, cal[kb + K_ESM], cal[kb + K_ESS])
            pf[c] = cal[kb + K_EPF]
            continue
        hi = acc[ab + A_SPH] - SPH_BIAS
        lo = acc[ab + A_SPL]
        neg = hi < 0
        if neg:
            if lo == 0:
                hi = -hi
            else:
                hi = -hi - 1
                lo = 0x1000000 - lo
        q = _div_py(hi, lo, n, 4)
        if neg:
            q = -q
        mv = _i32(sdv * 64) // n
        mi = _i32((acc[ab + A_SD] - SD_BIAS) * 64) // n
        if mv > -32768 and mv < 32768 and mi > -32768 and mi < 32768:
            q = _i32(q - (_i32(mv * mi) >> 6))
        else:
            q = _i32(q - _i32((mv >> 3) * (mi >> 3)))
        neg = q < 0
        q = abs(q)
        prod = _i32(rqv * rq)
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
            pfx = _i32(p6 * 1000) // s6
        s_va = _mulshift_py(prod, cal[kb + K_WM], cal[kb + K_WS] + tv + t)
        if clipped:
            p_w = _mulshift_py(s_va, (pfx * 16384) // 1000, 14)
        else:
            p_w = _mulshift_py(q, cal[kb + K_WM], cal[kb + K_WS])
        if cal[kb + K_NEG]:
            neg = not neg
        if neg:
            p_w = -p_w
            pfx = -pfx
        pw[c] = p_w
        sva[c] = s_va
        pf[c] = pfx
    status[S_FLAGS] = flags
    status[S_FIRST] = first
    status[S_MODE] = mode
    return vrms
