"""rms.py's viper kernels against their plain-Python twins, against exact sums done here in
CPython, and against the signed 32-bit range a viper int has on the ESP32."""
import json
import random

import numpy as np
import pytest

from pathlib import Path

from conftest import run_mpy

TESTS = Path(__file__).resolve().parent     # rms_twin.py: test-only, never deployed

MAX_ROUNDS = 2048           # rms.MAX_ROUNDS; test_max_rounds_matches_firmware checks it
INT32 = (-2**31, 2**31 - 1)

# Table layouts, as in rms.py (test_layout_matches_firmware checks them)
NC, C_OFF, C_PWR, C_K, C_A, K_BIAS = 4, 0, 1, 2, 3, 256
NA, SD_BIAS, SPH_BIAS = 6, 1 << 24, 1 << 16
NK = 14
K_KIND, K_M, K_S, K_WM, K_WS, K_NEG, K_NOISE, K_FLOOR, K_FS = range(9)
K_EPM, K_EPS, K_ESM, K_ESS, K_EPF = range(9, 14)

HARNESS = r"""
import json, sys, array, rms, rms_twin
spec = json.load(open(sys.argv[1]))
out = []

def ai(vals):
    return array.array('i', vals)

def run(impl, case, buf):
    clear, fc, acc_f, fin = impl
    nch, rounds, vch = case['nch'], case['rounds'], case['vch']
    res = {}
    try:
        win = ai([0, 0, 0, 0])
        cyc = fc(buf, nch, rounds, max(vch, 0), case['level'], case['hyst'], win)
        res['cycles'] = [cyc, win[0], win[1], win[2], win[3]]
        chans = ai(case['chans'])
        acc = ai([0] * (nch * rms.NA))
        clear(acc, nch)
        acc_f(buf, nch, rounds, case['r0'], case['r1'], vch, chans, acc)
        res['acc'] = list(acc)
        cal = ai(case['cal'])
        rs = ai([0] * (nch * rms.NR))
        o = [ai([0] * nch) for _ in range(4)]
        st = ai([0] * rms.NS)
        v = fin(case['r1'] - case['r0'], nch, vch, case['mode'], case['min_vrms'], cal, acc,
                chans, rs, o[0], o[1], o[2], o[3], st)
        res['finish'] = [v, list(rs), [list(x) for x in o], list(st), list(chans)]
    except OverflowError as e:
        res['overflow'] = str(e)
    return res

for case in spec['cases']:
    n = case['nch'] * case['rounds']
    buf = array.array('H', [0] * n)
    with open(case['buf'], 'rb') as f:
        f.readinto(buf)
    out.append({
        'viper': run((rms.clear, rms.find_cycles, rms.accumulate, rms.finish), case, buf),
        'twin': run((rms_twin.clear_py, rms_twin.find_cycles_py, rms_twin.accumulate_py,
                      rms_twin.finish_py),
                    case, buf),
    })
print(json.dumps(out))
"""


def scale(f):
    """(m, s): f == m / 2**s, 2**14 <= m < 2**15 (as metercal._scale)."""
    s = 0
    while f < 16384:
        f *= 2
        s += 1
    while f >= 32768:
        f /= 2
        s -= 1
    return int(round(f)), s


def make_case(tmp_path, name, samples, nch, vch, offsets, k=0, a=0, r0=0, r1=None, mode=1,
              noise6=0, floor=0, clip_fs=0):
    samples = np.asarray(samples, dtype=np.uint16).reshape(-1)
    rounds = len(samples) // nch
    path = tmp_path / f"{name}.bin"
    path.write_bytes(samples.astype("<u2").tobytes())
    chans, cal = [], []
    for c in range(nch):
        pwr = 1 if (vch >= 0 and c != vch) else 0
        chans += [offsets[c], pwr, k + K_BIAS, a]
        row = [0] * NK
        row[K_KIND] = 1 if c == vch else 0
        row[K_M], row[K_S] = scale(73.2 / 8)
        row[K_WM], row[K_WS] = scale(0.0862 * 73.2 / 1000 * (2 if c == nch - 1 else 1) / 64)
        row[K_NEG] = 1 if c == 2 else 0
        row[K_NOISE] = noise6
        row[K_FLOOR] = floor
        row[K_FS] = clip_fs
        row[K_EPM], row[K_EPS] = scale(120 * 0.95 / 1000)
        row[K_ESM], row[K_ESS] = scale(120 / 1000)
        row[K_EPF] = 950
        cal += row
    return dict(buf=str(path), nch=nch, rounds=rounds, vch=vch, chans=chans, cal=cal,
                r0=r0, r1=rounds if r1 is None else r1, mode=mode, min_vrms=1000,
                level=offsets[max(vch, 0)], hyst=64)


def run_cases(tmp_path, cases):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cases": cases}))
    proc = run_mpy(HARNESS, args=[spec], timeout=120, heap="4m", extra_path=[TESTS])   # test data, not firmware
    return json.loads(proc.stdout)


def exact_sums(case):
    """Sum d, sum d*d, sum vq*d per channel, in CPython big ints, from the buffer."""
    raw = np.frombuffer(open(case["buf"], "rb").read(), dtype="<u2").astype(np.int64)
    nch, rounds, vch = case["nch"], case["rounds"], case["vch"]
    x = np.minimum(raw.reshape(rounds, nch), 4095)
    r = np.arange(case["r0"], case["r1"])
    out = []
    for c in range(nch):
        off, pwr, kb, a = case["chans"][c * NC:(c + 1) * NC]
        d = x[r, c] - off
        sp = 0
        if pwr and vch >= 0:
            k = kb - K_BIAS
            offv = case["chans"][vch * NC + C_OFF]
            v0 = x[np.clip(r + k, 0, rounds - 1), vch] - offv
            v1 = x[np.clip(r + k + 1, 0, rounds - 1), vch] - offv
            vq = (v0 * (64 - a) + v1 * a + 8) >> 4
            sp = int(np.sum(vq * d))
        clip = int(np.sum((x[r, c] == 0) | (x[r, c] == 4095)))
        out.append((int(d.sum()), int(np.sum(d * d)), sp, clip))
    return out


def unpack(acc, nch):
    sums = []
    for c in range(nch):
        sd, s2h, s2l, sph, spl, clip = acc[c * NA:(c + 1) * NA]
        assert 0 <= s2l < 2**24 and 0 <= spl < 2**24
        sums.append((sd - SD_BIAS, s2h * 2**24 + s2l, (sph - SPH_BIAS) * 2**24 + spl, clip))
    return sums


def inputs(tmp_path):
    rng = np.random.default_rng(7)
    cases = []
    nch = 4
    # zero: every sample 0 (a rail), offsets at mid-rail
    cases.append(make_case(tmp_path, "zero", np.zeros(300 * nch), nch, 0, [2048] * nch))
    # random: uniform 12-bit noise, odd offsets, a fractional voltage shift
    cases.append(make_case(tmp_path, "random", rng.integers(0, 4096, 500 * nch), nch, 0,
                           [2000, 2100, 1900, 2048], k=0, a=23))
    # full-scale square wave, 0 / 4095, on every channel, period 40 rounds
    sq = np.where((np.arange(400) // 20) % 2 == 0, 4095, 0)
    cases.append(make_case(tmp_path, "square", np.repeat(sq, nch), nch, 0, [2048] * nch,
                           k=-1, a=40))
    # odd length: 3 channels, 333 rounds, window of odd length starting mid-buffer
    t = np.arange(333 * 3)
    sig = (2048 + 1500 * np.sin(2 * np.pi * t / 3 / 40) + rng.normal(0, 2, t.size)).round()
    cases.append(make_case(tmp_path, "odd", np.clip(sig, 0, 4095), 3, 0, [2048, 2050, 2046],
                           k=0, a=17, r0=7, r1=330, noise6=300, floor=10, clip_fs=11585))
    # no voltage channel: estimated powers
    cases.append(make_case(tmp_path, "novolts", rng.integers(1500, 2600, 257 * 3), 3, -1,
                           [2048] * 3, mode=0))
    return cases


def test_max_rounds_and_layout_match_firmware():
    names = ("MAX_ROUNDS NC C_OFF C_PWR C_K C_A K_BIAS NA SD_BIAS SPH_BIAS NK K_KIND K_M K_S "
             "K_WM K_WS K_NEG K_NOISE K_FLOOR K_FS K_EPM K_EPS K_ESM K_ESS K_EPF").split()
    out = run_mpy("import rms; print(%s)" % ", ".join("rms." + n for n in names)).stdout.split()
    ours = [MAX_ROUNDS, NC, C_OFF, C_PWR, C_K, C_A, K_BIAS, NA, SD_BIAS, SPH_BIAS, NK, K_KIND,
            K_M, K_S, K_WM, K_WS, K_NEG, K_NOISE, K_FLOOR, K_FS, K_EPM, K_EPS, K_ESM, K_ESS,
            K_EPF]
    assert list(map(int, out)) == ours


def test_twin_private_bounds_match_firmware():
    # rms_twin.py repeats rms.py's private const() bounds (private consts are not exported).
    import re
    from conftest import ROOT
    pat = re.compile(r"^(_[A-Z][A-Z0-9_]*) = const\(([^)]*)\)", re.M)
    ours = dict(pat.findall((ROOT / "firmware" / "rms.py").read_text()))
    twin = dict(pat.findall((ROOT / "tests" / "rms_twin.py").read_text()))
    assert twin and all(ours[k] == v for k, v in twin.items()), (ours, twin)


def test_viper_matches_twin_and_exact_sums(tmp_path):
    cases = inputs(tmp_path)
    results = run_cases(tmp_path, cases)
    for case, res in zip(cases, results):
        name = case["buf"]
        assert "overflow" not in res["twin"], (name, res["twin"])
        assert res["viper"] == res["twin"], name
        assert unpack(res["viper"]["acc"], case["nch"]) == exact_sums(case), name
    # the cases exercise what they claim
    zero, rand, square, odd, novolts = results
    assert zero["viper"]["finish"][3][0] & 1            # rail flagged
    assert square["viper"]["finish"][3][0] & 2          # clipped (0/4095 samples) flagged
    # 10 crossings in 400 rounds in the first one's direction (down, here): 9 cycles
    assert square["viper"]["cycles"][0] == 9
    assert odd["viper"]["finish"][2][0][1] > 0          # a current was measured
    assert novolts["viper"]["finish"][3][2] == 0        # estimated mode
    assert novolts["viper"]["finish"][2][3] == [950] * 3  # pf = assumed (no voltage channel)


def worst_cases(tmp_path):
    """Buffers at the largest window that push every sum to its bound."""
    n = MAX_ROUNDS
    nch = 3                     # V, CT, CT (the last one a 240 V load: doubled power scale)
    cases = []
    hi = np.full((n, nch), 4095)
    lo = np.zeros((n, nch))
    # d = +4095 on every channel (offsets 0); interpolation halfway, so vq = 16380
    cases.append(make_case(tmp_path, "allhigh", hi, nch, 0, [0, 0, 0], k=0, a=32))
    # d = -4095 (offsets 4095) on every channel: products positive again, sums negative
    cases.append(make_case(tmp_path, "alllow", lo, nch, 0, [4095] * 3, k=0, a=32))
    # voltage +4095, currents -4095: the most negative products
    mixed = np.concatenate([hi[:, :1], lo[:, 1:]], axis=1)
    cases.append(make_case(tmp_path, "mixed", mixed, nch, 0, [0, 4095, 4095], k=0, a=32))
    # full-scale square wave in phase on every channel, offsets at the far rail per half
    sq = np.where((np.arange(n) // 64) % 2 == 0, 4095, 0)
    cases.append(make_case(tmp_path, "square", np.repeat(sq, nch), nch, 0, [0, 4095, 0],
                           k=-3, a=63))
    return cases


def test_no_intermediate_leaves_int32_at_the_largest_window(tmp_path):
    # The host's viper ints are 64-bit, so a wrap on the ESP32 would not show here; the twin
    # checks every intermediate against the int32 range and raises OverflowError.
    cases = worst_cases(tmp_path)
    results = run_cases(tmp_path, cases)
    for case, res in zip(cases, results):
        assert "overflow" not in res["twin"], (case["buf"], res["twin"]["overflow"])
        assert res["viper"] == res["twin"], case["buf"]
        sums = unpack(res["viper"]["acc"], case["nch"])
        assert sums == exact_sums(case), case["buf"]
    # the extremes were reached: sum d*d = n * 4095**2 and |sum vq*d| = n * 16380 * 4095
    allhigh = unpack(results[0]["viper"]["acc"], 3)
    assert allhigh[1][1] == MAX_ROUNDS * 4095**2
    assert allhigh[1][2] == MAX_ROUNDS * 16380 * 4095
    mixed = unpack(results[2]["viper"]["acc"], 3)
    assert mixed[1][2] == -MAX_ROUNDS * 16380 * 4095


def test_overflow_check_can_fail(tmp_path):
    # Past the bound the twin must object: a window 2**24 rounds long makes the remainder of
    # the mean's division, shifted left by 8, leave int32.
    code = """
import array, rms, rms_twin
acc = array.array('i', [rms.SD_BIAS, 0xFFFFFE, 0, rms.SPH_BIAS, 0, 0])
chans = array.array('i', [2048, 0, rms.K_BIAS, 0])
cal = array.array('i', [0] * rms.NK)
o = [array.array('i', [0]) for _ in range(4)]
try:
    rms_twin.finish_py(2**24 - 1, 1, -1, 0, 0, cal, acc, chans, array.array('i', [0] * rms.NR),
                  o[0], o[1], o[2], o[3], array.array('i', [0] * rms.NS))
    print('no overflow')
except OverflowError as e:
    print('overflow')
"""
    assert run_mpy(code, extra_path=[TESTS]).stdout.strip() == "overflow"


def test_chunk_bounds_by_arithmetic():
    # The same bounds the comment in rms.py states, checked in exact integers.
    chunk = 32
    d_max = 4095
    vq_max = (4095 * 64 + 8) >> 4
    assert vq_max == 16380
    assert chunk * d_max * d_max < 2**29
    assert chunk * vq_max * d_max < 2**31 - 1                # one chunk of v*d
    assert chunk * d_max * d_max + 2**24 < 2**31            # s2 folded into (hi, lo)
    assert 2 * 2**24 < 2**31                                # sp folded as sp>>24, sp&0xFFFFFF
    assert MAX_ROUNDS * d_max * 64 < 2**29                  # 64 * sum d
    assert MAX_ROUNDS * d_max < SD_BIAS and MAX_ROUNDS * d_max + SD_BIAS < 2**31
    assert (MAX_ROUNDS * vq_max * d_max >> 24) < SPH_BIAS
    assert ((MAX_ROUNDS - 1) << 8 | 255) < 2**31           # remainder step of the division
    assert d_max * d_max * 64 < 2**30                       # Q6 mean square
    assert 0x7FFF * 0x7FFF < 2**30                          # mulshift product
    assert 999 * 1000 < (1 << 21) * 1000 < 2**31            # PF: p6 < s6 < 2**21


def test_twin_random_windows_match(tmp_path):
    # many small random windows, random offsets and shifts: viper == twin, sums exact
    rng = random.Random(11)
    cases = []
    for i in range(12):
        nch = rng.randint(1, 6)
        rounds = rng.randint(2, 257)
        vch = rng.choice([-1] + list(range(nch)))
        samples = np.array([rng.randint(0, 4095) for _ in range(nch * rounds)])
        offs = [rng.randint(0, 4095) for _ in range(nch)]
        r0 = rng.randint(0, rounds - 1)
        r1 = rng.randint(r0 + 1, rounds)
        cases.append(make_case(tmp_path, f"r{i}", samples, nch, vch, offs,
                               k=rng.randint(-3, 3), a=rng.randint(0, 63), r0=r0, r1=r1,
                               mode=rng.randint(0, 1), noise6=rng.randint(0, 5000),
                               floor=rng.randint(0, 3000), clip_fs=rng.randint(0, 32767)))
    for case, res in zip(cases, run_cases(tmp_path, cases)):
        assert "overflow" not in res["twin"], case["buf"]
        assert res["viper"] == res["twin"], case["buf"]
        assert unpack(res["viper"]["acc"], case["nch"]) == exact_sums(case), case["buf"]
