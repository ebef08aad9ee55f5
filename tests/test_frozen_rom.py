"""The simulated board's frozen umqtt (tools/panelsim/frozen.py): with make sim's environment
umqtt.simple runs in place from a read-only ROMFS image, as from the ESP32's flash, costs the
firmware's heap less than the same .mpy loaded from a directory, and the image is counted to
the simulator's own footprint."""
import os
import subprocess
import sys

from conftest import MICROPYTHON, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import hostbuild  # noqa: E402
import run_sim  # noqa: E402

# Heap the import adds, after collection; the image (if any) is mounted before the baseline.
IMPORT_COST = """
import gc
from panelsim import frozen
gc.collect()
before = gc.mem_alloc()
import umqtt.simple
gc.collect()
print(umqtt.simple.__file__, gc.mem_alloc() - before)
"""


def import_umqtt(env):
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=256k", "-c", IMPORT_COST],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    assert proc.returncode == 0, proc.stderr
    path, used = proc.stdout.split()
    return path, int(used)


def without_rom(env, micropypath):
    env = dict(env, MICROPYPATH=micropypath)
    del env["PANELCAP_FROZEN_ROM"]
    return env


def test_umqtt_runs_in_place_from_the_rom_and_costs_less_heap_than_from_a_file():
    env = run_sim.micropython_env()
    rom = hostbuild.frozen_rom()
    assert env["PANELCAP_FROZEN_ROM"] == str(rom)
    # The same .mpy: the image holds the staged file byte for byte.
    staged = rom.with_suffix("")
    mpy = (staged / "umqtt" / "simple.mpy").read_bytes()
    assert mpy in rom.read_bytes()
    rom_file, rom_bytes = import_umqtt(env)
    assert rom_file == "/frozen/umqtt/simple.mpy"
    # Without the variable nothing is mounted: umqtt comes from a directory on the path.
    dir_file, dir_bytes = import_umqtt(without_rom(env, ".frozen:%s:%s" % (
        staged, env["MICROPYPATH"])))
    assert dir_file == str(staged / "umqtt" / "simple.mpy")
    print("umqtt.simple: %d B of heap from a file, %d B from the ROM image" % (
        dir_bytes, rom_bytes))
    assert rom_bytes < dir_bytes


def test_the_simulators_footprint_includes_the_image():
    env = run_sim.micropython_env()
    with_rom = run_sim.simulator_footprint(env)
    no_rom = run_sim.simulator_footprint(without_rom(env, env["MICROPYPATH"]))
    image_size = hostbuild.frozen_rom().stat().st_size
    print("footprint %d B without the image, %d B with it (image %d B)" % (
        no_rom, with_rom, image_size))
    assert with_rom - no_rom >= image_size


def test_the_build_drops_a_stale_umqtt_and_rebuilds_the_image_only_when_changed(tmp_path):
    dest = tmp_path / "unix"
    (dest / "umqtt").mkdir(parents=True)
    (dest / "umqtt" / "simple.mpy").write_bytes(b"stale")   # would shadow the image's copy
    hostbuild.build(dest)
    assert not (dest / "umqtt").exists()
    rom = hostbuild.frozen_rom(dest)
    assert rom == tmp_path / "unix-frozen.romfs"
    assert str(ROOT / "lib") not in hostbuild.micropypath(dest).split(":")
    built = rom.stat().st_mtime_ns
    hostbuild.build(dest)
    assert rom.stat().st_mtime_ns == built
    old_ns = built - 10**9
    os.utime(rom, ns=(old_ns, old_ns))        # its input is now newer than the image
    hostbuild.build(dest)
    assert rom.stat().st_mtime_ns != old_ns
