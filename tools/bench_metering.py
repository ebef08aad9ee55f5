"""Benchmark of the metering kernel (rms.accumulate): ns per sample as viper, as
@micropython.native and as plain bytecode under the unix port, and the same loop in C.

All four run one algorithm side by side in one call of run(): the native and bytecode
variants are generated from rms.py's own source of accumulate (decorator swapped, pointer
casts dropped), the C one is a line-for-line port compiled here with gcc -O2. Input: the
board's six channels, 330 rounds (the sampler's 4-cycle window at 60 Hz), power sums and
voltage interpolation on for the five CTs, 12-bit noise around mid-rail.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from toolchain import MICROPYTHON  # noqa: E402
RMS = ROOT / "firmware" / "rms.py"
NCH = 6
ROUNDS = 330


def _kernel_source():
    """rms.py's constants (as const()) and accumulate's source."""
    text = RMS.read_text()
    consts = "\n".join(m.group(0) for m in
                       re.finditer(r"^_?[A-Z][A-Z0-9_]* = const\([^)]*\)", text, re.M))
    start = text.index("@micropython.viper\ndef accumulate(")
    end = text.index("\n\n\n", start)
    return consts, text[start:end] + "\n"


def _variants(dirpath):
    consts, src = _kernel_source()
    head = "import micropython\nfrom micropython import const\n" + consts + "\n\n"
    plain = re.sub(r"(\w+) = ptr(16|32)\((\w+)\)", r"\1 = \3", src)
    plain = re.sub(r"def accumulate\(.*?\):", "def accumulate(buf, nch, rounds, r0, r1, vch, "
                   "chans, acc):", plain, flags=re.S)
    native = plain.replace("@micropython.viper", "@micropython.native")
    bytecode = plain.replace("@micropython.viper\n", "")
    (dirpath / "kern_native.py").write_text(head + native)
    (dirpath / "kern_bytecode.py").write_text(head + bytecode)


_MPY_BENCH = r"""
import array, time, rms, kern_native, kern_bytecode
nch = %d
rounds = %d
x = 12345
buf = array.array('H', [0] * (nch * rounds))
for i in range(nch * rounds):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    buf[i] = 1024 + (x >> 8) %% 2048
chans = array.array('i', [0] * (nch * rms.NC))
for c in range(nch):
    chans[c * rms.NC + rms.C_OFF] = 2048
    chans[c * rms.NC + rms.C_PWR] = 1 if c else 0
    chans[c * rms.NC + rms.C_K] = rms.K_BIAS
    chans[c * rms.NC + rms.C_A] = (11 * c) %% 64
ref = None
for name, fn, reps in (('viper', rms.accumulate, 400), ('native', kern_native.accumulate, 40),
                       ('bytecode', kern_bytecode.accumulate, 8)):
    acc = array.array('i', [0] * (nch * rms.NA))
    fn(buf, nch, rounds, 0, rounds, 0, chans, acc)
    if ref is None:
        ref = list(acc)
    elif list(acc) != ref:
        raise SystemExit(name + ' disagrees with viper')
    best = None
    for trial in range(5):
        t0 = time.time_ns()
        for _ in range(reps):
            fn(buf, nch, rounds, 0, rounds, 0, chans, acc)
        ns = (time.time_ns() - t0) / (reps * nch * rounds)
        best = ns if best is None or ns < best else best
    print(name, best)
print('sums', ' '.join(str(v) for v in ref))
# the whole per-window call, on a buffer with a 60 Hz voltage: what the simulator pays
import math, meter, esp32_dinrail as board
for r in range(rounds):
    buf[r * nch] = int(2048 + 1900 * math.sin(2 * math.pi * 60 * r * nch * 35e-6))
m = meter.Meter(board.CHANNELS, board.ADC_SLOT_US, 120, 60)
m.process(buf, rounds)
best = None
for trial in range(5):
    t0 = time.time_ns()
    for _ in range(200):
        m.process(buf, rounds)
    us = (time.time_ns() - t0) / 200 / 1000
    best = us if best is None or us < best else best
print('window_us', best)
"""

_C_BENCH = r"""
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#define NC 4
#define NA 6
#define CHUNK 32
#define K_BIAS 256
#define SD_BIAS 0x1000000
#define SPH_BIAS 0x10000

/* rms.accumulate, line for line, in int32 arithmetic as on the ESP32 */
__attribute__((noinline)) static void accumulate(const uint16_t *b, int32_t nch,
        int32_t rounds, int32_t r0, int32_t r1, int32_t vch, const int32_t *ch, int32_t *a) {
    int32_t offv = 0, rmax = rounds - 1;
    if (vch >= 0) offv = ch[vch * NC];
    for (int32_t c = 0; c < nch; c++) {
        int32_t cb = c * NC, off = ch[cb], pwr = ch[cb + 1];
        if (vch < 0) pwr = 0;
        int32_t k = ch[cb + 2] - K_BIAS, fa = ch[cb + 3], fb = 64 - fa;
        int32_t sd = 0, s2h = 0, s2l = 0, sph = 0, spl = 0, clip = 0;
        int32_t r = r0, j = r0 * nch + c;
        while (r < r1) {
            int32_t re = r + CHUNK;
            if (re > r1) re = r1;
            int32_t s2 = 0, sp = 0;
            while (r < re) {
                int32_t x = b[j];
                if (x >= 4095) { x = 4095; clip++; } else if (x == 0) clip++;
                int32_t d = x - off;
                sd += d;
                s2 += d * d;
                if (pwr) {
                    int32_t r2 = r + k;
                    if (r2 < 0) r2 = 0; else if (r2 > rmax) r2 = rmax;
                    int32_t v0 = b[r2 * nch + vch];
                    r2 = r + k + 1;
                    if (r2 < 0) r2 = 0; else if (r2 > rmax) r2 = rmax;
                    int32_t v1 = b[r2 * nch + vch];
                    if (v0 > 4095) v0 = 4095;
                    if (v1 > 4095) v1 = 4095;
                    int32_t vq = ((v0 - offv) * fb + (v1 - offv) * fa + 8) >> 4;
                    sp += vq * d;
                }
                j += nch;
                r++;
            }
            s2l += s2; s2h += s2l >> 24; s2l &= 0xFFFFFF;
            sph += sp >> 24; spl += sp & 0xFFFFFF; sph += spl >> 24; spl &= 0xFFFFFF;
        }
        int32_t ab = c * NA;
        a[ab] = sd + SD_BIAS; a[ab + 1] = s2h; a[ab + 2] = s2l;
        a[ab + 3] = sph + SPH_BIAS; a[ab + 4] = spl; a[ab + 5] = clip;
    }
}

int main(void) {
    enum { NCH = %d, ROUNDS = %d, REPS = 20000 };
    static uint16_t buf[NCH * ROUNDS];
    int32_t chans[NCH * NC], acc[NCH * NA];
    uint32_t x = 12345;
    for (int i = 0; i < NCH * ROUNDS; i++) {
        x = (x * 1103515245u + 12345u) & 0x7FFFFFFF;
        buf[i] = 1024 + (x >> 8) %% 2048;
    }
    for (int c = 0; c < NCH; c++) {
        chans[c * NC] = 2048; chans[c * NC + 1] = c ? 1 : 0;
        chans[c * NC + 2] = K_BIAS; chans[c * NC + 3] = (11 * c) %% 64;
    }
    double best = 1e30;
    for (int trial = 0; trial < 5; trial++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < REPS; i++) {
            accumulate(buf, NCH, ROUNDS, 0, ROUNDS, 0, chans, acc);
            __asm__ volatile("" : : "r"(acc) : "memory");
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec))
                    / ((double)REPS * NCH * ROUNDS);
        if (ns < best) best = ns;
    }
    printf("c %%.4f\nsums", best);
    for (int i = 0; i < NCH * NA; i++) printf(" %%d", acc[i]);
    printf("\n");
    return 0;
}
"""


def _parse(out):
    figures, sums = {}, None
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        if name == "sums":
            sums = rest.split()
        else:
            figures[name] = float(rest)
    return figures, sums


def run():
    """[(name, value)]: ns per sample per variant, the ratios against viper, and the cost
    of one whole meter.process() window (6 channels x 330 rounds), in us."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_metering_"))
    try:
        _variants(tmp)
        (tmp / "bench.py").write_text(_MPY_BENCH % (NCH, ROUNDS))
        env = dict(os.environ, MICROPYPATH=f"{tmp}:{ROOT / 'firmware'}:{ROOT / 'boards'}")
        mpy = subprocess.run([str(MICROPYTHON), "-X", "heapsize=1m", str(tmp / "bench.py")],
                             capture_output=True, text=True, env=env, check=True, timeout=300)
        (tmp / "kernel.c").write_text(_C_BENCH % (NCH, ROUNDS))
        subprocess.run(["gcc", "-O2", "-o", str(tmp / "kernel"), str(tmp / "kernel.c")],
                       check=True, capture_output=True, text=True)
        c = subprocess.run([str(tmp / "kernel")], capture_output=True, text=True, check=True,
                           timeout=300)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mp_figures, mp_sums = _parse(mpy.stdout)
    c_figures, c_sums = _parse(c.stdout)
    if mp_sums != c_sums:
        raise RuntimeError("the C kernel's sums differ from viper's: not the same algorithm")
    viper = mp_figures["viper"]
    return [
        ("kernel_viper_ns_per_sample", round(viper, 2)),
        ("kernel_native_ns_per_sample", round(mp_figures["native"], 2)),
        ("kernel_bytecode_ns_per_sample", round(mp_figures["bytecode"], 2)),
        ("kernel_c_ns_per_sample", round(c_figures["c"], 2)),
        ("viper_speedup_vs_bytecode", round(mp_figures["bytecode"] / viper, 1)),
        ("viper_cost_vs_c", round(viper / c_figures["c"], 2)),
        ("meter_process_us_per_window", round(mp_figures["window_us"], 1)),
    ]


if __name__ == "__main__":
    for name, value in run():
        print(f"{name}: {value}")
