"""`make sim`'s options (tools/run_sim.py): each bad one is refused before the firmware
starts, in one line, exit 2, leaving no output of an earlier run; settings by the console's
names; the day replayed by its date; the pace of --speed kept without a cap."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_mpy

sys.path.insert(0, str(ROOT / "tools"))
import run_sim  # noqa: E402

OUTPUTS = ("sim.csv", "sim.png", "summary.json", "sim.log")
HOUSEHOLD = ROOT / "tools" / "data" / "households" / "ideal_house65_2018-02_1min.csv.gz"


def make_sim(out, *args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "run_sim.py"), "--out",
                           str(out), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def stale_outputs(out):
    out.mkdir()
    for name in OUTPUTS:
        (out / name).write_text("from an earlier run\n")


@pytest.mark.parametrize("args, expected", [
    (["--limit-w", -5], "error: --limit-w: limit_w must be an int in 0..960000 W, got -5"),
    (["--limit-w", 100000], "error: --limit-w: limit_w must be at most 80 % of the panel "
                            "rating (19200 W for 100 A on 2 x 120 V), got 100000"),
    (["--cfg", "band_pct=99"], "error: --cfg band_pct=99: band_pct must be an int in 1..50 %, "
                               "got 99"),
    (["--cfg", "nosuch=3"], "error: --cfg nosuch=3: unknown setting 'nosuch'"),
    (["--cfg", "loads.water_heater.min_off_s=abc"],
     "error: --cfg loads.water_heater.min_off_s=abc: min_off_s must be an int in 0..86400 s, "
     "got 'abc'"),
    (["--cfg", "loads.water_heater.output=7"], "loads.water_heater: output must be 0..3"),
    (["--speed", -3], "error: --speed must be a number >= 0"),
    (["--panel", "ev.arrive_h=abc"], "error: --panel: ev.arrive_h must be an hour within the "
                                     "run, 0 to under 24 (null: never), got 'abc'"),
    (["--panel", "ev.arrive_h=30"], "got '30'"),
    (["--panel", "water_heater.tank_l=-5"], "water_heater.tank_l must be a number >= 0"),
    (["--panel", "nosuch=1"], "error: --panel: no setting 'nosuch'"),
    (["--reboot-at-s", -5], "error: --reboot-at-s must be a simulated second of the run, "
                            "0..86399, got -5"),
    (["--hours", 0], "error: --hours must be a number of simulated hours"),
    (["--hours", -1], "error: --hours must be a number of simulated hours"),
    (["--hours", 1, "--reboot-at-s", 3600], "0..3599, got 3600"),
    (["--day", 5], "error: --day must be a date YYYY-MM-DD (e.g. 2018-02-05), got '5'"),
    (["--day", "2018-02-30"], "got '2018-02-30'"),
    (["--heap", "lots"], "error: --heap must be auto or a size"),
    (["--limit-w", "abc"], "error: --limit-w must be an int, got 'abc'"),
    (["--speed", "fast"], "error: --speed must be a number, got 'fast'"),
    # found by the simulator's own checks (run.py --check), still before the firmware starts
    (["--panel", "base_pf=3"], "error: --panel: base_pf must be in 0.1..1, got 3"),
    (["--day", "2018-02-06"], "error: default_day.csv:1441: no rows on 2018-02-06 "
                              "(the file starts 2018-02-05)"),
])
def test_a_bad_option_is_one_line_exit_2_and_no_output_is_left(tmp_path, args, expected):
    out = tmp_path / "out"
    stale_outputs(out)
    proc = make_sim(out, *args)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-3000:]
    lines = proc.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stdout and "heap:" not in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == []      # no stale output, no CSV


def test_a_failed_run_leaves_no_stale_output_and_no_csv_without_data(tmp_path):
    # Far too little heap: the firmware dies in its build, before its first second.
    out = tmp_path / "out"
    stale_outputs(out)
    proc = make_sim(out, "--hours", "0.01", "--heap", "100k")
    assert proc.returncode == 1
    assert proc.stderr.strip().split("\n")[-1].startswith("error: MemoryError")
    assert sorted(p.name for p in out.iterdir()) == ["sim.log"]       # this run's own log
    assert "MemoryError" in (out / "sim.log").read_text()


def test_cfg_takes_the_consoles_dotted_names():
    setpoint, items = run_sim.firmware_overrides(
        7200, ["loads.water_heater.min_off_s=120", "band_pct=10", "ct.CT3.gain=1.05",
               "loads.ev.min_a=null"])
    assert setpoint == 7200
    given = dict(items)
    assert given["band_pct"] == 10 and given["limit_w"] == 7200
    loads = {spec["name"]: spec for spec in given["loads"]}
    assert loads["water_heater"]["min_off_s"] == 120
    assert "min_a" not in loads["ev"]
    assert given["ct"]["CT3"]["gain"] == 1.05
    # Nothing else changes: only what differs from the defaults goes to the simulator.
    assert sorted(given) == ["band_pct", "ct", "limit_w", "loads"]


def test_a_dotted_cfg_runs_and_the_header_names_the_date(tmp_path):
    proc = make_sim(tmp_path / "out", "--hours", "0.01", "--cfg",
                    "loads.water_heater.min_off_s=120", "--panel", "ev.arrive_h=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the README's example day is the default: IDEAL house 65 on 5 February 2018
    assert proc.stdout.split("\n")[0] == (
        "panelcap sim: default_day.csv (2018-02-05), limit 7200 W, 0.01 h")


def test_day_takes_a_date_in_the_profile(tmp_path):
    proc = make_sim(tmp_path / "out", "--hours", "0.01", "--profile", HOUSEHOLD,
                    "--day", "2018-02-11")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[0] == (
        "panelcap sim: ideal_house65_2018-02_1min.csv.gz (2018-02-11), limit 7200 W, 0.01 h")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["limit_w"] == 7200


PACE = r"""
import time as real_time
from panelsim import vtime
import asyncio.core as core

class Host:                  # a fake host clock: real time is what the waits spend
    us = 0
    @staticmethod
    def ticks_us():
        return Host.us
    @staticmethod
    def ticks_ms():
        return Host.us // 1000
    ticks_diff = staticmethod(real_time.ticks_diff)
    ticks_add = staticmethod(real_time.ticks_add)

def real_wait(ioq, timeout_ms):
    Host.us += 20 + max(0, timeout_ms) * 1000     # 20 us of host work per wait

vtime.time = Host
vtime._real_wait = real_wait
for speed in (60, 1000, 5000):
    Host.us = 0
    vt = vtime.VirtualTime(speed=speed)
    vt.install()
    due = 100
    while vt.elapsed_ms() < 600000:            # a task every 100 simulated ms
        if due <= vt.elapsed_ms():
            due += 100
            continue
        core.IOQueue.wait_io_event(None, due - vt.elapsed_ms())
    print(speed, vt.elapsed_ms() * 1000 / Host.us)
"""


def test_speed_is_kept_above_a_few_hundred_on_a_fake_host_clock():
    # The pace against a fake host clock (no wall-clock figure): each wait costs the host
    # 20 us. Waiting wait by wait in whole ms held 1000 and 5000 to about 100.
    for line in run_mpy(PACE).stdout.split("\n")[-4:-1]:
        speed, achieved = map(float, line.split())
        assert achieved == pytest.approx(speed, rel=0.02), line
