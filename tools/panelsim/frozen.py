"""The simulated board's frozen modules: on the ESP32, umqtt.simple is frozen into the
firmware and its bytecode runs in place from flash, so it costs the heap only its module and
class objects. Here the ROMFS image tools/hostbuild.py builds (PANELCAP_FROZEN_ROM) is mounted
read-only at /frozen, where imports also run in place. The image itself is held in this
port's heap, counted to the simulator's share (panelsim.footprint) as the board's flash would
be to no one's. Importing this module does it; without the variable it does nothing, so runs
from source with lib/ on MICROPYPATH keep working."""

import os
import sys
import vfs

MOUNT_POINT = "/frozen"

_image = None       # VfsRom reads the image in place: it must stay alive while mounted


def _mount(path):
    global _image
    with open(path, "rb") as f:
        _image = f.read()
    vfs.mount(vfs.VfsRom(_image), MOUNT_POINT)
    # Beside the port's own frozen modules (asyncio), ahead of the build directories.
    at = sys.path.index(".frozen") + 1 if ".frozen" in sys.path else 0
    sys.path.insert(at, MOUNT_POINT)


_path = os.getenv("PANELCAP_FROZEN_ROM")
if _path:
    _mount(_path)
