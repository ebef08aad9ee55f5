"""Compiles what runs on the unix port to .mpy with the port's own mpy-cross and native
architecture (x86 on the 32-bit build, tools/toolchain.py), as a board runs compiled
firmware (compiling source at import costs heap a board does not spend): firmware/,
boards/ and the simulator (tools/panelsim) into build/unix-ARCH. umqtt from lib/ is
frozen in the ESP32 firmware, so it goes into a ROMFS image instead (build/unix-frozen.romfs),
which tools/panelsim/frozen.py mounts so its bytecode runs in place, as from the board's
flash. Rebuilds only what changed."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from toolchain import HOST_MARCH, HOST_MPY_CROSS  # noqa: E402
# One directory per architecture: native code built for one will not load on the other.
BUILD = ROOT / "build" / ("unix-" + HOST_MARCH)
BUILD_ROM = ROOT / "build" / ("unix-" + HOST_MARCH + "-rom")
SOURCES = (("firmware", ""), ("boards", ""), ("tools/panelsim", "panelsim"),
           # the status page's web framework (web.py), shipped as .mpy beside the firmware
           ("lib/microdot", "microdot"))
FROZEN_SOURCES = (("lib/umqtt", "umqtt"),)
SKIP = {"main.py", "boot.py"}     # stay source on the board; not used by the simulator


def build(dest=None, firmware_in_rom=False):
    """Returns dest, holding an .mpy for every module, same layout as the import path; builds
    the frozen modules' image beside it (frozen_rom(dest)). firmware_in_rom: the firmware's
    modules go into the image too, as on a board whose MicroPython has them frozen or in a
    ROMFS partition: their bytecode then runs from flash and costs the heap nothing."""
    dest = Path(dest or (BUILD_ROM if firmware_in_rom else BUILD))
    sources, frozen = SOURCES, FROZEN_SOURCES
    if firmware_in_rom:
        # What make deploy writes into the board's romfs partition: the firmware and the
        # status page's microdot. The simulator stays in RAM, counted as its own, and so do
        # the board files (imported before the image is mounted; a few hundred bytes of
        # data charged to the firmware that the board keeps in flash).
        in_rom = [s for s in SOURCES if s[0] in ("firmware", "lib/microdot")]
        sources = [s for s in SOURCES if s not in in_rom]
        frozen = FROZEN_SOURCES + tuple(in_rom)
    _compile(sources, dest)
    for _, sub in FROZEN_SOURCES:
        # Left by earlier builds: on the path it would shadow the image's copy.
        shutil.rmtree(dest / sub, ignore_errors=True)
    staged = _frozen_dir(dest)
    _compile(frozen, staged)
    _build_rom(staged, frozen_rom(dest))
    return dest


def frozen_rom(dest=BUILD):
    """The ROMFS image of the frozen modules built with dest (PANELCAP_FROZEN_ROM)."""
    return _frozen_dir(dest).with_suffix(".romfs")


def micropypath(dest=BUILD):
    # No lib/: umqtt comes from the image, as on the board, never from source.
    return ":".join([".frozen", str(dest)])


def _frozen_dir(dest):
    dest = Path(dest)
    return dest.with_name(dest.name + "-frozen")    # the .mpy files the image holds


def _compile(sources, dest):
    for src_dir, sub in sources:
        out_dir = dest / sub
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / src_dir).glob("*.py")):
            if src.name in SKIP:
                continue
            out = out_dir / (src.stem + ".mpy")
            # Rebuilt when the source's content differs from what the .mpy was made of (a
            # sidecar holds its sha256): an mtime check kept a stale .mpy that another
            # checkout sharing this build directory had compiled later from older source.
            stamp = out.with_suffix(".sha256")
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            if out.exists() and stamp.exists() and stamp.read_text() == digest:
                continue
            # Named as make build names the board's (firmware/app.py): the name is a string
            # in RAM, and an absolute path made the heap figures depend on the clone's place.
            tmp = out.with_suffix(".mpy.tmp%d" % os.getpid())
            proc = subprocess.run([HOST_MPY_CROSS, "-march=" + HOST_MARCH, "-o", str(tmp),
                                   "-s", src.relative_to(ROOT).as_posix(), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                tmp.unlink(missing_ok=True)
                sys.exit("error: mpy-cross %s: %s" % (src, proc.stderr.strip()))
            tmp.replace(out)        # a reader never sees half an .mpy
            stamp.write_text(digest)


def _build_rom(staged, image):
    """Writes staged (a directory of .mpy files) as a ROMFS image, unless image is newer."""
    files = sorted(p for p in staged.rglob("*.mpy") if p.is_file())
    if image.exists() and all(image.stat().st_mtime >= p.stat().st_mtime for p in files):
        return
    from mpremote.romfs import VfsRomWriter     # mpremote's own `romfs build`, already compiled
    writer = VfsRomWriter()
    _add_dir(writer, staged)
    tmp = image.with_suffix(".tmp")
    tmp.write_bytes(writer.finalise())
    tmp.replace(image)      # a reader never sees half an image


def _add_dir(writer, path):
    for entry in sorted(path.iterdir()):
        if entry.is_dir():
            writer.opendir(entry.name)
            _add_dir(writer, entry)
            writer.closedir()
        elif entry.suffix == ".mpy":           # not the build's .sha256 stamps
            writer.mkfile(entry.name, entry.read_bytes())


if __name__ == "__main__":
    print(build())
    print(frozen_rom())
