"""A power cut at every block write of every save, on littlefs (issue 17 item 2).

tests/powercut_driver.py runs each save under the 32-bit port on a RAM block device mounted as
littlefs (vfs.VfsLfs2, 4096-byte blocks as on the ESP32) that dies at its n-th program or
erase, for every n, over many random contents (seeded): config.json, wear.json, grid.json,
compliance.log, demand.json, and config.json again on a file system that will not rename over
a file (atomicfile's fallback). After each cut the flash is mounted again and the firmware's
own load reads it: the file is the old version or the new one, never corrupt (a first save
cut leaves none, which each load explains), and a save after that works. Then a fresh process
boots the firmware (app.build) from the flash left by each cut of the first config cases: it
comes up configured, or in safe mode saying why, with every output safe."""
import json
import os
import subprocess
from collections import Counter

import pytest

from conftest import MICROPYTHON, ROOT, mpy_env, run_mpy

DRIVER = ROOT / "tests" / "powercut_driver.py"
SEED = 17
# Cases per subject: each cuts every block write of one save, so a few hundred cuts each.
CASES = {"config": 30, "config-norename": 30, "wear": 80, "grid": 40, "compliance": 60,
         "demand": 60}


def drive(subject, cases, image_dir="-", plant_dir=None):
    env = mpy_env()
    if plant_dir:
        env["MICROPYPATH"] = str(plant_dir) + ":" + env["MICROPYPATH"]
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=2m", str(DRIVER), subject, str(SEED),
                           str(cases), str(image_dir)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    cuts = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(cuts) == len(lines), [line for line in lines if not line.startswith("{")][:5]
    return cuts


def summary(subject, cuts):
    seen = Counter(c["seen"] if not c["seen"].startswith("BROKEN") else "broken" for c in cuts)
    cases = len({c["case"] for c in cuts})
    return ("power cut on littlefs, %s: %d cuts over %d cases (%d..%d block writes a save): "
            "%d old, %d new, %d none (first save), %d broken" % (
                subject, len(cuts), cases, min(c["of"] for c in cuts),
                max(c["of"] for c in cuts), seen["old"], seen["new"], seen["none"],
                seen["broken"]))


@pytest.mark.parametrize("subject", sorted(CASES))
def test_a_cut_at_every_block_write_leaves_the_old_file_or_the_new(subject, capsys):
    cuts = drive(subject, CASES[subject])
    with capsys.disabled():
        print("\n" + summary(subject, cuts))
    broken = [c for c in cuts if c["seen"] not in ("old", "new", "none") or c["after"] != "ok"]
    assert not broken, broken[:3]
    assert len(cuts) >= 200
    # Once a cut has found the new version, a cut at any later write of the same save does
    # too: the old one never comes back.
    first_new = {}
    for c in cuts:
        if c["seen"] == "new":
            first_new.setdefault(c["case"], c["cut"])
        elif c["case"] in first_new:
            raise AssertionError("old after new: %r" % c)
    for c in cuts:
        if c["seen"] == "none":
            assert c["case"] % 5 == 0, c            # only where nothing was saved before
    assert {"old", "new"} <= {c["seen"] for c in cuts}


def test_the_firmware_boots_safe_and_explained_after_each_cut(tmp_path, capsys):
    # The flash after each cut of three config saves (the first of all, and two over an old
    # file), each booted by a fresh process: configured with the old or the new settings, or
    # in safe mode saying no configuration is saved yet; never anything unexplained.
    cuts = drive("config", 3, tmp_path)
    booted = Counter()
    for c in cuts:
        image = tmp_path / ("config-%d-%d.img" % (c["case"], c["cut"]))
        proc = subprocess.run([MICROPYTHON, "-X", "heapsize=512k", str(DRIVER), "boot",
                               str(image)], capture_output=True, text=True, timeout=60,
                              env=mpy_env(), cwd=ROOT)
        assert proc.returncode == 0, (c, proc.stdout[-1500:], proc.stderr[-1500:])
        boot = json.loads(proc.stdout.splitlines()[-1])
        assert not boot["running"]
        if c["seen"] == "none":
            assert boot["safe_reason"].startswith("no configuration saved yet"), (c, boot)
            assert any(line.startswith("SAFE MODE: every controllable load shed: no "
                                       "configuration saved yet") for line in boot["said"])
            booted["safe mode, explained"] += 1
        else:
            assert boot["safe_reason"] is None and boot["cfg"] == c["cfg"], (c, boot)
            assert not any("SAFE MODE" in line for line in boot["said"]), boot
            booted["configured (%s)" % c["seen"]] += 1
        os.remove(image)
    with capsys.disabled():
        print("\npower cut, fresh boots: %d: %s" % (
            len(cuts), ", ".join("%d %s" % (n, k) for k, n in sorted(booted.items()))))
    assert booted["safe mode, explained"] and booted["configured (old)"]


PLANTED_REMOVE_FIRST = '''
import os

def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)          # the defect issue 17 names: the old file goes first
        os.rename(tmp, path)

def read(path):
    with open(path) as f:
        return f.read()
'''


def test_the_cut_finds_the_remove_then_rename_defect(tmp_path):
    # atomicfile as it was: on a file system that will not rename over a file, the old
    # config.json was removed before the new one took its name.
    (tmp_path / "atomicfile.py").write_text(PLANTED_REMOVE_FIRST)
    cuts = drive("config-norename", 5, plant_dir=tmp_path)
    lost = [c for c in cuts if c["case"] % 5 and c["seen"] not in ("old", "new")]
    assert lost, "the planted defect went unnoticed"
    assert "no configuration saved yet" in lost[0]["why"]


PLANTED_IN_PLACE = '''
def write(path, data):
    with open(path, "w") as f:      # no temporary file: the old text is truncated first
        if callable(data):
            data(f)
        else:
            f.write(data)

def read(path):
    with open(path) as f:
        return f.read()
'''


@pytest.mark.parametrize("subject", ["config", "wear", "grid", "demand"])
def test_the_cut_finds_a_save_written_in_place(subject, tmp_path):
    # littlefs commits a file on close, yet a save that truncates and rewrites the file in
    # place still leaves a corrupt one when a cut falls between its block writes.
    (tmp_path / "atomicfile.py").write_text(PLANTED_IN_PLACE)
    cuts = drive(subject, 20, plant_dir=tmp_path)
    assert [c for c in cuts if c["seen"].startswith("BROKEN")], "the planted write went unnoticed"


def test_a_grid_save_that_failed_is_written_by_the_next(tmp_path):
    # gridlimits.Grid.save skips a schedule it has already written. It noted the schedule as
    # written before the write, so after a failed one (flash full) the same schedule sent
    # again was never written, and a reboot lost it.
    out = run_mpy("""
import os
import atomicfile, gridlimits
from limits import Limits
from fakeclock import FakeClock
os.chdir('%s')
clock = FakeClock()
g = gridlimits.Grid(Limits(setpoint_w=19200), clock, 19200, path='grid.json')
g.set_wall(1795716000, clock.t)
g.intervals = [[10, 3600, 5000, None, None]]
g.event_name = 'e'
g._heard = 0
write = atomicfile.write
def full(path, data):
    raise OSError(28)
atomicfile.write = full
g.save()
print('after the failed write', 'grid.json' in os.listdir())
atomicfile.write = write
g.save()                      # the same schedule, sent again
print('after the next', 'grid.json' in os.listdir())
""" % tmp_path).stdout.splitlines()
    assert out == ["after the failed write False", "after the next True"], out
