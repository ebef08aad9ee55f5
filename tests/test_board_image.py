"""The board's own MicroPython (boards/PANELCAP_ESP32/: ESP32_GENERIC with a romfs partition)
and the ROMFS image `make deploy` writes into that partition. The image build runs here; the
MicroPython build needs ESP-IDF, which CI does not have, so its inputs are checked instead."""
import re
import subprocess

from conftest import MICROPYTHON, ROOT

BOARD = ROOT / "boards" / "PANELCAP_ESP32"
FLASH_BYTES = 4 * 1024 * 1024     # an ESP32-WROOM-32E's
_XTENSAWIN = 10                   # MicroPython's native arch number in an .mpy header


def partitions():
    rows = []
    for line in (BOARD / "partitions-panelcap.csv").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, kind, sub, offset, size = [f.strip() for f in line.split(",")][:5]
            rows.append((name, kind, sub, int(offset, 16), int(size, 16)))
    return rows


def test_the_partition_table_fits_the_flash_and_has_a_romfs_partition():
    rows = partitions()
    names = [r[0] for r in rows]
    assert names == ["nvs", "phy_init", "factory", "romfs", "vfs"]
    end = 0x9000                  # after the bootloader and the table itself
    for name, kind, sub, offset, size in rows:
        assert offset >= end, "%s overlaps the partition before it" % name
        if kind == "app":
            assert offset % 0x10000 == 0, "%s: apps start on a 64 KiB boundary" % name
        assert offset % 0x1000 == 0 and size % 0x1000 == 0, name
        end = offset + size
    assert end <= FLASH_BYTES
    romfs = [r for r in rows if r[0] == "romfs"][0]
    assert romfs[1:3] == ("data", "0x8f")            # the subtype MicroPython's esp32 port reads
    # As big as MicroPython's own 4 MiB romfs layout gives the app.
    assert [r for r in rows if r[0] == "factory"][0][4] >= 0x1D0000


def test_the_board_enables_romfs_and_uses_that_table():
    assert re.search(r"^#define MICROPY_VFS_ROM \(1\)$", (BOARD / "mpconfigboard.h").read_text(),
                     re.M)
    sdk = (BOARD / "sdkconfig.board").read_text()
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="boards/PANELCAP_ESP32/partitions-panelcap.csv"' in sdk
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in (BOARD / "mpconfigboard.cmake").read_text()


def test_the_image_holds_the_firmware_for_the_esp32_with_room_to_grow(tmp_path):
    proc = subprocess.run(["make", "--no-print-directory", "romfs", "BOARD=esp32_dinrail"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    image = ROOT / "build" / "esp32_dinrail-xtensawin.romfs"
    romfs = [r for r in partitions() if r[0] == "romfs"][0]
    assert image.stat().st_size <= romfs[4] // 2, "the image has outgrown half its partition"
    # Mounted as the board mounts it: every module, the board file and the page's microdot,
    # compiled for the ESP32 (native code carries its architecture).
    code = """
import vfs, os
vfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')
for d in ('/rom', '/rom/microdot'):
    for name in sorted(os.listdir(d)):
        if name.endswith('.mpy'):
            head = open(d + '/' + name, 'rb').read(4)
            print(d[5:] + '/' + name if d != '/rom' else name, head[0] == 77, head[2] >> 2)
""" % str(image)
    proc = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    names = {r[0] for r in rows}
    modules = {p.stem + ".mpy" for p in (ROOT / "firmware").glob("*.py")} - {"boot.mpy",
                                                                              "main.mpy"}
    assert names == modules | {"board.mpy", "microdot/__init__.mpy", "microdot/microdot.mpy",
                               "microdot/helpers.mpy"}
    assert all(r[1] == "True" for r in rows)
    archs = {int(r[2]) for r in rows} - {0}
    assert archs == {_XTENSAWIN}


def test_make_firmware_without_its_tools_says_what_is_missing_in_one_line():
    proc = subprocess.run(["make", "--no-print-directory", "firmware", "MICROPY_SRC="], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == ("error: firmware: MICROPY_SRC must name a "
                                           "MicroPython checkout (v1.25 or later) with ports/esp32")
