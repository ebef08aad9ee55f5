"""tools/sim.py: the replay on small CSVs, its metrics against hand-computed values, bad input."""
import csv
import gzip
import json
import subprocess
import sys

import pytest

from conftest import ROOT

SIM = str(ROOT / "tools" / "sim.py")


def sim(*args):
    return subprocess.run([sys.executable, SIM, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def write_csv(path, header, rows, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def hand_case(tmp_path):
    """1-minute rows, limit 7,200 W. Base 1,000 W. EV (7,680 W) asks for minutes 1-3;
    minute 6 the house alone draws 8,000 W."""
    rows = []
    for m in range(10):
        ev = 7680 if 1 <= m <= 3 else 0
        house = 8000 if m == 6 else 1000
        rows.append([f"2024-03-01 10:{m:02d}:00", house + ev, ev])
    return write_csv(tmp_path / "hand.csv", ["Time", "House", "EV"], rows)


def run_json(tmp_path, csv_path, *extra):
    out = tmp_path / "m.json"
    proc = sim(csv_path, "--total", "House", "--ev", "EV", "--limit-a", 30, "--volts", 240,
               "--json", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc


def test_metrics_match_a_hand_computed_case(tmp_path):
    m, proc = run_json(tmp_path, hand_case(tmp_path))
    assert "panelcap" in proc.stdout and "current_shaper" in proc.stdout
    nc = m["no_control"]
    # EV on for 180 s: 1,000 + 7,680 = 8,680 W, 1,480 W over; then 60 s of the house alone at 8,000.
    assert nc["over_s"] == 240
    assert nc["over_controllable_s"] == 180 and nc["over_base_only_s"] == 60
    assert nc["over_wh"] == pytest.approx(1480 * 180 / 3600 + 800 * 60 / 3600, abs=0.01)
    assert nc["longest_excursion_s"] == 180 and nc["longest_controllable_excursion_s"] == 180
    ev = nc["loads"]["EV"]
    assert ev["asked_wh"] == pytest.approx(7680 * 180 / 3600, abs=0.1)
    assert ev["delivered_wh"] == ev["asked_wh"] and ev["late_s"] == 0 and ev["switch_ops"] == 0
    # Shaper: EV amps = (7,200 - 1,000) // 240 = 25 A = 6,000 W. It owes 1,680 W x 180 s and
    # pays it back at 6,000 W: behind until 50 s after its demand ends. The house alone still
    # exceeds the limit for 60 s; the EV is paused then (2 switch operations).
    cs = m["current_shaper"]
    assert cs["over_s"] == 60 and cs["over_base_only_s"] == 60 and cs["over_controllable_s"] == 0
    assert cs["over_wh"] == pytest.approx(800 * 60 / 3600, abs=0.01)
    assert cs["loads"]["EV"]["delivered_wh"] == ev["asked_wh"]
    assert cs["loads"]["EV"]["late_s"] == 50
    assert cs["loads"]["EV"]["switch_ops"] == 2
    # panelcap keeps the panel under the limit whenever a controllable load draws; only the
    # house alone exceeds it. The EV ramps slowly, so it finishes later, but it finishes.
    pc = m["panelcap"]
    assert pc["over_controllable_s"] == 0 and pc["longest_controllable_excursion_s"] == 0
    assert pc["over_base_only_s"] == 60 and pc["longest_excursion_s"] == 60
    assert pc["loads"]["EV"]["delivered_wh"] == ev["asked_wh"]
    assert pc["loads"]["EV"]["late_s"] > 50
    assert pc["loads"]["EV"]["adjust_ops"] > 0
    for s in ("panelcap", "no_control", "current_shaper"):
        r = m[s]
        assert r["over_s"] == r["over_controllable_s"] + r["over_base_only_s"]
        assert r["steps"] == 600
        assert set(r["loads"]["EV"]) >= {"asked_wh", "delivered_wh", "late_s", "switch_ops"}


def test_water_heater_epoch_seconds_gz_and_one_second_rows(tmp_path):
    """Another shape: epoch-second times, 1 s rows, gzip, a water heater and an EV, in 240 V amps."""
    rows = []
    for s in range(1800):
        wh = 4500 if 100 <= s < 700 else 0
        ev = 7680 if 300 <= s < 1200 else 0
        base = 3000 if 400 <= s < 460 else 400
        rows.append([1700000000 + s, base + wh + ev, wh, ev, 17])
    p = write_csv(tmp_path / "fine.csv.gz", ["epoch", "mains", "heater", "car", "other"], rows, gz=True)
    out = tmp_path / "m.json"
    proc = sim(p, "--time", "epoch", "--total", "mains", "--ev", "car", "--water-heater", "heater",
               "--limit-w", 7200, "--json", out, "--csv", tmp_path / "run.csv", "--trace-step-s", 10,
               "--plot", tmp_path / "run.png")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    assert m["run"]["row_step_s"] == 1 and m["run"]["priority"] == ["car", "heater"]
    nc, pc = m["no_control"], m["panelcap"]
    assert nc["over_s"] > 300
    assert pc["over_s"] < nc["over_s"] / 10
    assert pc["longest_controllable_excursion_s"] <= 5     # the EV's response delay
    for name in ("car", "heater"):
        assert pc["loads"][name]["asked_wh"] == nc["loads"][name]["asked_wh"]
    assert pc["loads"]["heater"]["asked_wh"] == pytest.approx(4500 * 600 / 3600, abs=0.1)
    with open(tmp_path / "run.csv") as f:
        table = list(csv.reader(f))
    assert table[0][:3] == ["time", "base_w", "panelcap_total_mean_w"]
    assert len(table) == 1 + 180
    assert (tmp_path / "run.png").stat().st_size > 10000


def test_long_zero_runs_are_missing_data_and_trip_the_failsafe(tmp_path):
    rows = []
    for m in range(40):
        house = 0 if 10 <= m < 25 else 900
        rows.append([f"2024-03-01 10:{m:02d}:00", house, 0])
    m, _ = run_json(tmp_path, write_csv(tmp_path / "gap.csv", ["Time", "House", "EV"], rows))
    assert m["run"]["missing_rows"] == 15
    assert m["panelcap"]["gap_s"] == 15 * 60
    assert m["panelcap"]["failsafe_count"] == 1
    # A short run of zeros is a quiet house, not a gap.
    rows = [[f"2024-03-01 10:{i:02d}:00", 0 if 3 <= i < 6 else 900, 0] for i in range(20)]
    m, _ = run_json(tmp_path, write_csv(tmp_path / "quiet.csv", ["Time", "House", "EV"], rows))
    assert m["run"]["missing_rows"] == 0 and m["panelcap"]["failsafe_count"] == 0


@pytest.mark.parametrize("rows, args, expect", [
    ([["2024-03-01 10:00:00", 100, 0]] * 3, ["--total", "Mains"], ":1: no column 'Mains' (--total)"),
    ([["2024-03-01 10:00:00", 100, 0]] * 3, ["--total", "House", "--ev", "Car"], ":1: no column 'Car'"),
    ([["2024-03-01 10:00:00", 100, 0], ["2024-03-01 10:01:00", "12x", 0]], ["--total", "House"],
     ":3: bad number '12x' in column 'House'"),
    ([["2024-03-01 10:00:00", 100, 0], ["2024-03-01 10:01:00", 100]], ["--total", "House"],
     ":3: 2 fields, header has 3"),
    ([["2024-03-01 10:00:00", 100, 0], ["yesterday", 100, 0]], ["--total", "House"],
     ":3: bad time 'yesterday'"),
    ([["2024-03-01 10:01:00", 100, 0], ["2024-03-01 10:00:00", 100, 0]], ["--total", "House"],
     ":3: time '2024-03-01 10:00:00' does not advance"),
])
def test_bad_input_gives_one_line_with_file_and_line_and_exit_2(tmp_path, rows, args, expect):
    p = write_csv(tmp_path / "bad.csv", ["Time", "House", "EV"], rows)
    proc = sim(p, *args, "--limit-w", 7200)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(p) in lines[0] and expect in lines[0], lines[0]


def test_missing_file_and_bad_options_exit_2(tmp_path):
    proc = sim(tmp_path / "nope.csv", "--total", "House", "--limit-w", 7200)
    assert proc.returncode == 2 and "nope.csv" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = sim(hand_case(tmp_path), "--total", "House")      # no limit
    assert proc.returncode == 2


@pytest.mark.parametrize("args, expect", [
    (["--band-pct", 99], "sim.py: error: --band-pct: band_pct must be an int in 1..50 %, got 99"),
    (["--band-pct", 0], "sim.py: error: --band-pct: band_pct must be an int in 1..50 %, got 0"),
    (["--min-off-s", -1], "sim.py: error: --min-off-s: min_off_s must be an int in 0..86400 s"),
    (["--ev-max-a", 100], "sim.py: error: --ev-max-a: max_a must be an int in 6..80 A, got 100"),
    (["--ev-delay-s", 0], "sim.py: error: --ev-delay-s must be at least 1, got 0"),
])
def test_a_controller_option_out_of_range_is_its_problem_in_one_line_exit_2(tmp_path, args,
                                                                            expect):
    # shed.py's own checks name the setting; docs/shed.md promises the option's problem.
    proc = sim(hand_case(tmp_path), "--total", "House", "--ev", "EV", "--limit-w", 7200, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expect), proc.stderr


LAYER = str(ROOT / "tools" / "layer_loads.py")


def layer(*args):
    return subprocess.run([sys.executable, LAYER, *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_layer_loads_takes_what_sim_takes_plain_csv_and_any_time_column(tmp_path):
    # A week of minutes in a plain CSV whose time column is not called Time, and the same
    # timed in epoch seconds: both layered alike, and the result replays.
    rows = [[f"2024-03-{4 + m // 1440:02d} {m // 60 % 24:02d}:{m % 60:02d}:00", 500]
            for m in range(7 * 1440)]
    plain = write_csv(tmp_path / "week.csv", ["timestamp", "Aggregate"], rows)
    epoch = write_csv(tmp_path / "week_epoch.csv.gz", ["t", "Aggregate"], [
        [1709510400 + 60 * m, w] for m, (_, w) in enumerate(rows)], gz=True)
    out = tmp_path / "layered.csv"
    proc = layer(plain, out, "--seed", 7)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        table = list(csv.reader(f))
    assert table[0] == ["timestamp", "Aggregate", "EV", "WaterHeater"]
    assert any(r[2] == "7680" for r in table[1:]) and any(r[3] == "4500" for r in table[1:])
    assert all(float(r[1]) == 500 + int(r[2]) + int(r[3]) for r in table[1:])
    proc = layer(epoch, tmp_path / "layered_epoch.csv.gz", "--seed", 7)
    assert proc.returncode == 0, proc.stderr
    with gzip.open(tmp_path / "layered_epoch.csv.gz", "rt") as f:
        assert [r[2:] for r in csv.reader(f)][1:] == [r[2:] for r in table[1:]]
    proc = sim(out, "--total", "Aggregate", "--ev", "EV", "--water-heater", "WaterHeater",
               "--limit-w", 7200, "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_layer_loads_bad_input_is_one_line_exit_2(tmp_path):
    p = write_csv(tmp_path / "bad.csv", ["Time", "Aggregate"],
                  [["2024-03-01 10:00:00", 100], ["2024-03-01 10:01:00", "12x"]])
    proc = layer(p, tmp_path / "out.csv")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"layer_loads.py: error: {p}:3: bad number '12x' in column 'Aggregate'")
    proc = layer(p, tmp_path / "out.csv", "--total", "House")
    assert proc.returncode == 2 and ":1: no column 'House' (--total)" in proc.stderr


def refit_three_days(tmp_path):
    """Three days of REFIT house 20 with the EV and the water heater layered on."""
    sys.path.insert(0, str(ROOT / "tools"))
    import layer_loads
    layered = tmp_path / "layered.csv.gz"
    layer_loads.layer(str(ROOT / "tools" / "data" / "households" /
                          "refit_house20_2014-12_1min.csv.gz"), str(layered))
    with gzip.open(layered, "rt") as f:
        lines = f.readlines()[:1 + 3 * 1440]
    three = tmp_path / "three.csv"
    three.write_text("".join(lines))
    return three


def test_duty_mode_uses_the_headroom_and_keeps_both_rules(tmp_path):
    """--duty-mode: the 7,200 W limit is the 80 % line of a 9,000 W rating; panelcap runs
    firmware/duty.py: never over the rating longer than the EV's 5-s response, never over 80 %
    on any three-hour average, and the EV finishes sooner than under the plain 80 %."""
    three = refit_three_days(tmp_path)
    base = [three, "--total", "Aggregate", "--ev", "EV", "--water-heater", "WaterHeater",
            "--limit-a", 30, "--volts", 240]
    runs = {}
    for name, extra in (("duty", ["--duty-mode"]), ("plain", [])):
        out = tmp_path / f"{name}.json"
        proc = sim(*base, *extra, "--json", out)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads(out.read_text())
    d, p = runs["duty"]["panelcap"], runs["plain"]["panelcap"]
    assert d["worst_3h_avg_pct"] <= 80.0, d
    assert d["longest_over_100pct_s"] <= 5, d
    assert d["longest_over_80pct_s"] > 600, d               # it did use the room above 80 %
    assert d["loads"]["EV"]["late_s"] < p["loads"]["EV"]["late_s"], (d["loads"], p["loads"])
    raw = runs["duty"]["no_control"]
    assert raw["worst_3h_avg_pct"] > 80, raw          # without control the rule breaks
    assert "worst_3h_avg_pct" not in p


def test_demand_window_budget_holds_every_window_a_controllable_load_could_have(tmp_path):
    """--window-min/--budget-kw: panelcap runs the firmware's demand.py on three days of REFIT
    house 20 with the EV and water heater layered on; its whole quarter-hours stay in a 4 kW
    budget, which the baselines break, and the JSON carries the window figures."""
    three = refit_three_days(tmp_path)
    out = tmp_path / "w.json"
    proc = sim(three, "--total", "Aggregate", "--ev", "EV", "--water-heater", "WaterHeater",
               "--limit-a", 30, "--volts", 240, "--window-min", 15, "--budget-kw", 4,
               "--json", out)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    pc, raw = m["panelcap"], m["no_control"]
    assert pc["over_budget_windows_controllable"] == 0, pc
    assert pc["peak_window_kw"] <= 4.0, pc
    assert raw["over_budget_windows_controllable"] > 10 and raw["peak_window_kw"] > 8, raw
    assert pc["loads"]["EV"]["delivered_wh"] == raw["loads"]["EV"]["delivered_wh"], pc
    assert "peak window kW" in proc.stdout
    plain, _ = run_json(tmp_path, hand_case(tmp_path))
    assert "peak_window_kw" not in plain["panelcap"]


@pytest.mark.parametrize("args,expect", [
    (["--window-min", 15], "--window-min and --budget-kw go together"),
    (["--budget-kw", 4], "--window-min and --budget-kw go together"),
    (["--window-min", 30, "--budget-kw", 4], "invalid choice: 30"),
    (["--window-min", 15, "--budget-kw", 0], "--budget-kw must be in 0.1..200, got 0.0"),
])
def test_demand_window_options_refused_in_one_line(tmp_path, args, expect):
    proc = sim(hand_case(tmp_path), "--total", "House", "--ev", "EV", "--limit-a", 30, *args)
    last = proc.stderr.strip().splitlines()[-1]          # argparse's usage may come first
    assert proc.returncode == 2 and last.startswith("sim.py: error: ") and expect in last, \
        proc.stderr


def pv_case(tmp_path):
    """1-minute rows over 6 h: a 500 W house, a 3 kW water heater that asks for 40 minutes at
    the end, and PV: 4 kW from the first hour to the fifth, a cloud (300 W) every half hour."""
    rows = []
    for m in range(360):
        wh = 3000 if m >= 320 else 0
        pv = 0 if m < 60 or m >= 300 else (300 if m % 30 < 5 else 4000)
        rows.append([f"2024-06-01 {8 + m // 60:02d}:{m % 60:02d}:00", 500 + wh, wh, pv])
    return write_csv(tmp_path / "pv.csv", ["Time", "House", "WH", "PV"], rows)


def pv_run(tmp_path, *extra):
    out = tmp_path / "pv.json"
    proc = sim(pv_case(tmp_path), "--total", "House", "--water-heater", "WH", "--pv", "PV",
               "--limit-w", 7200, "--json", out, "--strategies", "panelcap,no_control", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc


def test_export_limit_soaks_the_surplus_into_the_tank(tmp_path):
    plain, _ = pv_run(tmp_path, "--export-measure-w", 1000)
    lim, proc = pv_run(tmp_path, "--export-limit-w", 1000, "--soak-store-wh", 8000)
    assert "export kWh" in proc.stdout and "soaked kWh" in proc.stdout
    p, l, nc = plain["panelcap"], lim["panelcap"], lim["no_control"]
    # 4 h of sun, 3,500 W exported outside the clouds: no soaking without a limit.
    assert p["soaked_wh"] == 0 and nc["soaked_wh"] == 0
    assert p["pv_wh"] == pytest.approx(nc["pv_wh"]) and p["export_wh"] > 10000
    # With a 1,000 W limit the 3 kW heater soaks the tank full (8 kWh, all of it surplus:
    # 3,500 W exported covers it), then the export goes on above the limit: no room left.
    assert l["soaked_wh"] == pytest.approx(8000, rel=0.02)
    assert l["export_wh"] == pytest.approx(p["export_wh"] - l["soaked_wh"], rel=0.02)
    assert l["export_over_wh"] < p["export_over_wh"]
    # The tank served the evening's 2 kWh of hot water: the heater drew nothing then.
    assert l["loads"]["WH"]["soaked_wh"] >= l["soaked_wh"]
    assert l["loads"]["WH"]["delivered_wh"] == pytest.approx(l["loads"]["WH"]["soaked_wh"], abs=10)
    # Above the limit with room in the tank only while the soak waited its min off time.
    assert l["export_over_room_s"] <= 120


def test_curtailing_the_inverter_holds_the_limit_once_the_tank_is_full(tmp_path):
    # The same day with the inverter curtailed by the firmware's curtail.py (5 kW, 2 s to
    # follow a cap): the tank soaks as much as without it, then the export stays at the
    # limit, over it only while the inverter follows a new cap after each cloud.
    soak, _ = pv_run(tmp_path, "--export-limit-w", 1000, "--soak-store-wh", 8000)
    cur, proc = pv_run(tmp_path, "--export-limit-w", 1000, "--soak-store-wh", 8000,
                       "--curtail-w", 5000)
    s, c = soak["panelcap"], cur["panelcap"]
    assert "curtailed kWh" in proc.stdout and "curtailed_wh" not in cur["no_control"]
    assert c["soaked_wh"] == pytest.approx(s["soaked_wh"], rel=0.02)
    # the clouds' ends: 7 a day at most 2 s of response and a step each
    assert s["export_over_s"] > 2000 and c["export_over_s"] <= 8 * 3, (s, c)
    # what was not exported over the limit was curtailed, not soaked
    assert c["curtailed_wh"] == pytest.approx(s["export_over_wh"] - c["export_over_wh"],
                                              rel=0.05)
    proc = sim(pv_case(tmp_path), "--total", "House", "--water-heater", "WH", "--pv", "PV",
               "--limit-w", 7200, "--curtail-w", 5000)
    assert proc.returncode == 2 and "--curtail-w needs --export-limit-w" in proc.stderr


def test_surplus_mode_and_export_options_refused_in_one_line(tmp_path):
    sur, _ = pv_run(tmp_path, "--surplus", "--soak-store-wh", 1000)
    assert sur["panelcap"]["soaked_wh"] == pytest.approx(1000, rel=0.02)
    assert sur["panelcap"]["soak_import_wh"] < 20
    for args, expect in ((["--export-limit-w", -1], "--export-limit-w must be in 0..500000"),
                         (["--soak-store-wh", -5], "--soak-store-wh must be in 0..200000")):
        proc = sim(pv_case(tmp_path), "--total", "House", "--water-heater", "WH", "--pv", "PV",
                   "--limit-w", 7200, *args)
        assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
    proc = sim(pv_case(tmp_path), "--total", "House", "--limit-w", 7200, "--surplus")
    assert proc.returncode == 2 and "need a --pv column" in proc.stderr
