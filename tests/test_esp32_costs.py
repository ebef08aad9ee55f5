"""The ESP32 cost model (tools/panelsim/vtime.py, machine.py): ADC reads and Python time are
charged to simulated time, so the scheduler's worst gap can be measured as on the board.
The ADC part is exact; the Python part scales the host's own time, so only its bounds are
asserted (host noise only ever adds)."""
import subprocess

import pytest

from conftest import ROOT, mpy_env, run_mpy, MICROPYTHON

SNIPPET = r"""
import time, asyncio
from panelsim.vtime import VirtualTime, _cpu_us
vt = VirtualTime(); vt.install(); vt.charge_cpu(50)
def busy(us):
    # us of this thread's CPU time, the clock vtime charges: on a loaded host a loop timed by
    # the wall clock loses some of its us to other processes and is charged less than 100 ms.
    t = _cpu_us()
    while time.ticks_diff(_cpu_us(), t) < us:
        pass
async def main():
    t0 = vt.elapsed_ms()
    busy(2000)                  # 2 ms of host time: 100 ms on the ESP32
    await asyncio.sleep_ms(0)
    charged = vt.elapsed_ms() - t0
    hold = vt.worst_hold_ms
    vt.worst_hold_ms = 0
    s = vt.sim_begin()
    busy(10000)                 # the simulator's own work: 500 ms if it were charged
    vt.sim_end(s)
    await asyncio.sleep_ms(0)
    print(charged, hold, vt.worst_hold_ms)
asyncio.run(main())
"""


def test_python_time_is_charged_and_the_simulators_own_is_not():
    charged, hold, sim_hold = map(int, run_mpy(SNIPPET).stdout.split())
    assert charged >= 100 and hold >= 100, (charged, hold)
    assert sim_hold < 250, sim_hold          # 500 if the simulator's 10 ms were charged


def test_a_scan_holds_the_scheduler_for_its_reads_and_rows_stay_on_the_second():
    # ADC only (no Python factor): deterministic. The sampler scans a cycle at a time: at
    # 60 Hz 1 5/8 cycles are 130 rounds of 6 channels, 35 us a read: 27 ms (a 4-cycle
    # window in one scan held it 83 ms).
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=400k", "-c",
         "from panelsim import run; run.main(['--hours', '0.05', '--adc-read-us', '35', "
         "'--quiet'])"], capture_output=True, text=True, env=mpy_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [l for l in proc.stderr.splitlines() if l.startswith("sim: worst scheduler hold")]
    assert line, proc.stderr[-2000:]
    words = line[0].split()
    assert int(words[4]) == 130 * 6 * 35 // 1000 == 27, line
    assert int(words[13]) == 27, line                         # the 99.9th percentile
    rows = proc.stdout.splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(180))


def test_time_the_host_gives_to_other_processes_is_not_charged():
    # A stretch costs the CPU time the firmware ran (hostcpu, built into the 32-bit port):
    # a task that sleeps the host for 20 ms runs ~nothing; by wall time it was charged
    # 20 ms x 50 = 1,000 ms, as a preemption of the simulator by another process was.
    snippet = SNIPPET.replace("busy(2000)  ", "time.sleep_ms(20)")
    assert "time.sleep_ms(20)" in snippet
    probe = run_mpy("import hostcpu", check=False)
    if probe.returncode != 0:
        pytest.skip("this port has no hostcpu (the 64-bit wheel): wall time is charged")
    charged, hold, _ = map(int, run_mpy(snippet).stdout.split())
    assert charged < 100 and hold < 100, (charged, hold)
