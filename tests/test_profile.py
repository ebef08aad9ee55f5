"""Load profiles under the unix port: good and gzip files, missing data, one-line errors."""
import ast
import csv
import gzip
import math

import pytest

from conftest import ROOT

SHIPPED = ROOT / "tools" / "data" / "profiles" / "default_day.csv"
HOUSEHOLDS = ROOT / "tools" / "data" / "households"     # shipped with the repo


def load(mpy, path, **kw):
    """Profile(path, **kw) under micropython: its watts, missing minutes and a few lookups."""
    args = "".join(", %s=%r" % kv for kv in kw.items())
    out = mpy("""
import gc
from panelsim.profile import Profile
gc.collect()
free = gc.mem_free()
p = Profile(%r%s)
gc.collect()
kept = free - gc.mem_free()
print(repr({"watts": list(p.watts), "missing": p.missing_minutes, "bytes": len(bytes(p.watts)),
            "kept": kept,
            "at": [p.watts_at(s) for s in (0, 59, 60, 90, 3600 * 19 + 30, 86399, 86400, 86430)],
            "at_ms": [p.watts_at_ms(t) for t in (30000, 45000, 86370000)]}))
""" % (str(path), args)).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def error(mpy, path, **kw):
    args = "".join(", %s=%r" % kv for kv in kw.items())
    proc = mpy("""
from panelsim.profile import Profile, ProfileError
try:
    Profile(%r%s)
    print("no error")
except ProfileError as e:
    print(str(e))
""" % (str(path), args))
    return proc.stdout.strip()


def reference(path, column="Aggregate", start_day=0, minutes=1440):
    """Independent CPython reading of the rule: over the whole file, runs of >= 30 exact zeros
    are missing; missing minutes hold the last good value; then cut the window."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))
    vals = [float(r[column]) for r in rows]
    bad = [False] * len(vals)
    i = 0
    while i < len(vals):
        j = i
        while j < len(vals) and vals[j] == 0:
            j += 1
        if j - i >= 30:
            for k in range(i, j):
                bad[k] = True
        i = max(j, i + 1)
    good = [v for v, b in zip(vals, bad) if not b]
    last = good[0]
    filled = []
    for v, b in zip(vals, bad):
        last = last if b else v
        filled.append(math.floor(last + 0.5))
    start = start_day * 1440        # every file starts at midnight and has every minute
    return filled[start:start + minutes], sum(bad[start:start + minutes])


def test_shipped_profile_matches_the_csv_and_is_compact(mpy):
    r = load(mpy, SHIPPED)
    want, missing = reference(SHIPPED)
    assert len(want) == 1440 and missing == 0
    assert r["watts"] == want and r["missing"] == 0
    # 4 bytes a minute; the whole object well under 8 kB of a 128 kB heap
    assert r["bytes"] == 1440 * 4 and r["kept"] < 8 * 1024
    w = want
    assert r["at"] == [w[0], w[0], w[1], w[1], w[19 * 60], w[1439], w[0], w[0]]   # repeats daily
    assert r["at_ms"] == [w[0], w[0], w[1439]]
    assert max(w[17 * 60:22 * 60]) > 9000            # the evening shower peak


def test_linear_interpolation_between_minutes(mpy):
    r = load(mpy, SHIPPED, interp="linear")
    w = reference(SHIPPED)[0]
    assert r["at_ms"][0] == w[0] + (w[1] - w[0]) * 30000 // 60000
    assert r["at_ms"][1] == w[0] + (w[1] - w[0]) * 45000 // 60000
    assert r["at"][7] == w[0] + (w[1] - w[0]) * 30000 // 60000     # 86430 s wraps to 30 s


@pytest.mark.parametrize("name, day, missing, zeros", [
    ("refit_house20_2014-12_1min.csv.gz", 17, 796, 0),    # a 1433-minute gap from 10:44...
    ("refit_house20_2014-12_1min.csv.gz", 18, 637, 0),    # ...to 10:37 the next day
    ("refit_house20_2014-12_1min.csv.gz", 27, 50, 0),
    ("ideal_house65_2018-02_1min.csv.gz", 10, 30, 124),   # exactly 30 min: missing
    ("ideal_house65_2018-02_1min.csv.gz", 2, 0, 109),     # 13..21 min runs: kept
])
def test_gzip_household_day_with_missing_data(mpy, name, day, missing, zeros):
    path = HOUSEHOLDS / name
    want, want_missing = reference(path, start_day=day)
    assert want_missing == missing
    r = load(mpy, path, start_day=day)
    assert r["watts"] == want and r["missing"] == missing
    assert r["watts"].count(0) == zeros


def test_zero_runs_short_kept_long_held_across_window_edges(mpy, tmp_path):
    # day 0: ends with 20 zeros; day 1: 15 more zeros at its start (a 35-minute run across
    # midnight), then values, a 10-minute zero run (kept), a 45-minute zero run (held)
    lines = ["Time,Other,Aggregate"]
    vals = [100 + (m % 7) for m in range(1420)] + [0] * 20
    vals += [0] * 15 + [500] * 100 + [0] * 10 + [700] * 100 + [0] * 45 + [300] * (1440 - 270)
    vals += [0] * 3 + [1] * 10          # day 2 starts with 3 zeros: not a long run
    for m, v in enumerate(vals):
        d, hm = divmod(m, 1440)
        lines.append("%s %02d:%02d:00,9,%d.0" % (("2024-02-28", "2024-02-29", "2024-03-01")[d],
                                                hm // 60, hm % 60, v))
    path = tmp_path / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    r = load(mpy, path, start_day=1)
    w = r["watts"]
    assert w[:15] == [100 + (1419 % 7)] * 15        # the run from the day before is missing
    assert w[15:115] == [500] * 100
    assert w[115:125] == [0] * 10                   # a short run is a real zero
    assert w[225:270] == [700] * 45                 # a long run holds the last good value
    assert w[270:] == [300] * 1170
    assert r["missing"] == 60
    # day 0 ends in 20 zeros followed by 15 (across midnight, 2024 is a leap year: 29 Feb)
    r0 = load(mpy, path, start_day=0)
    assert r0["watts"][1420:] == [100 + (1419 % 7)] * 20 and r0["missing"] == 20


def test_seconds_time_column_and_other_watt_column(mpy, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t_s,Kettle,Aggregate\n" + "".join(
        "%d,%d,%d\n" % (60 * m, 2000 if m == 5 else 0, 300 + m) for m in range(60)))
    r = load(mpy, path, column="Kettle", hours=1)
    # 5 zeros (kept), the kettle, then 54 zeros: a long run, so missing, holding 2000
    assert r["watts"] == [0] * 5 + [2000] * 55 and r["missing"] == 54
    r = load(mpy, path, hours=1)
    assert r["watts"] == [300 + m for m in range(60)] and r["missing"] == 0


def test_missing_file(mpy, tmp_path):
    assert error(mpy, tmp_path / "nope.csv") == "nope.csv: cannot open: no such file"


def test_malformed_number_names_file_line_and_column(mpy, tmp_path):
    rows = ["Time,Aggregate"] + ["2024-01-01 00:%02d:00,%d" % (m, 200 + m) for m in range(20)]
    rows[16] = "2024-01-01 00:15:00,abc"            # line 17 of the file
    path = tmp_path / "profile.csv"
    path.write_text("\n".join(rows) + "\n")
    assert error(mpy, path) == "profile.csv:17: expected a number in column 'Aggregate', got 'abc'"


@pytest.mark.parametrize("row, line, problem", [
    ("2024-01-01 00:03:00", 5, "expected 2 columns, got 1"),
    ("2024-01-01 00:03:00,12,7", 5, "expected 2 columns, got 3"),
    ("yesterday,12", 5, "expected a time 'YYYY-MM-DD HH:MM:SS' or seconds in column 'Time', "
                        "got 'yesterday'"),
    ("2024-13-01 00:03:00,12", 5, "expected a time 'YYYY-MM-DD HH:MM:SS' or seconds in column "
                                  "'Time', got '2024-13-01 00:03:00'"),
    ("2024-01-01 00:03:00,nan", 5, "expected a number in column 'Aggregate', got 'nan'"),
    ("2024-01-01 00:03:00,", 5, "expected a number in column 'Aggregate', got ''"),
])
def test_malformed_rows(mpy, tmp_path, row, line, problem):
    rows = ["Time,Aggregate"] + ["2024-01-01 00:%02d:00,%d" % (m, 200) for m in range(10)]
    rows[line - 1] = row
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    msg = error(mpy, path)
    assert msg == "bad.csv:%d: %s" % (line, problem)
    assert "\n" not in msg


def test_bad_column_name(mpy):
    assert error(mpy, SHIPPED, column="Power") == (
        "default_day.csv:1: no watt column 'Power'; columns are Time, Aggregate")


def test_bad_gzip_and_empty_files(mpy, tmp_path):
    data = gzip.compress(SHIPPED.read_bytes())
    (tmp_path / "cut.csv.gz").write_bytes(data[:len(data) // 2])
    assert error(mpy, tmp_path / "cut.csv.gz").startswith("cut.csv.gz:")
    assert error(mpy, tmp_path / "cut.csv.gz").endswith(": corrupt or truncated gzip data")
    (tmp_path / "plain.csv.gz").write_bytes(SHIPPED.read_bytes())
    assert error(mpy, tmp_path / "plain.csv.gz") == (
        "plain.csv.gz:1: corrupt or truncated gzip data")
    (tmp_path / "empty.csv").write_text("")
    assert error(mpy, tmp_path / "empty.csv") == "empty.csv:1: empty file, expected a header line"
    (tmp_path / "header.csv").write_text("Time,Aggregate\n")
    assert error(mpy, tmp_path / "header.csv") == "header.csv:1: no data rows"
    assert error(mpy, SHIPPED, start_day=3) == (
        "default_day.csv:1441: no rows in the selected window (start_day 3, 24 h)")
    (tmp_path / "zeros.csv").write_text("Time,Aggregate\n" + "".join(
        "%d,0\n" % (60 * m) for m in range(40)))
    assert error(mpy, tmp_path / "zeros.csv", hours=1) == (
        "zeros.csv:41: no usable data in the selected window (all missing)")
    assert error(mpy, SHIPPED, hours=25) == (
        "default_day.csv: hours must be an int in 1..24, got 25")


def test_default_path_is_the_shipped_profile(mpy):
    out = mpy("""
from panelsim.profile import Profile, default_path
p = Profile(default_path())
print(default_path(), p.watts_at(19 * 3600 + 6 * 60))
""", cwd="/tmp").stdout.split()
    assert out == [str(SHIPPED), "9141"]


def test_a_date_picks_the_day_and_names_it(mpy):
    path = HOUSEHOLDS / "ideal_house65_2018-02_1min.csv.gz"
    by_date = load(mpy, path, date="2018-02-11")
    assert by_date["watts"] == load(mpy, path, start_day=10)["watts"]
    assert by_date["watts"] == reference(path, start_day=10)[0]
    out = mpy("""
from panelsim.profile import Profile, default_path
print(Profile(default_path()).date, Profile(default_path(), date='2018-02-05').date,
      Profile(%r, start_day=3).date)
""" % str(path)).stdout.split()
    assert out == ["2018-02-05", "2018-02-05", "2018-02-04"]


def test_a_date_outside_the_file_or_malformed_is_one_line(mpy, tmp_path):
    assert error(mpy, SHIPPED, date="2018-02-06") == (
        "default_day.csv:1441: no rows on 2018-02-06 (the file starts 2018-02-05)")
    assert error(mpy, SHIPPED, date="2018-02-04") == (
        "default_day.csv:2: no rows on 2018-02-04 (the file starts 2018-02-05)")
    assert error(mpy, SHIPPED, date="5") == (
        "default_day.csv: the day must be a date YYYY-MM-DD, got '5'")
    assert error(mpy, SHIPPED, date="2018-13-05") == (
        "default_day.csv: the day must be a date YYYY-MM-DD, got '2018-13-05'")
    (tmp_path / "secs.csv").write_text("t,W\n0,100\n60,100\n")
    assert error(mpy, tmp_path / "secs.csv", column="W", date="2018-02-05") == (
        "secs.csv:2: a date needs times 'YYYY-MM-DD HH:MM:SS' in column 't', got '0'")
