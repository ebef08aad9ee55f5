#!/usr/bin/env python3
"""Packs compiled modules into a ROMFS image for the board's romfs partition (`make romfs`):

    tools/romfs_image.py OUT ROOT FILE...

Each FILE keeps its path relative to ROOT inside the image (the partition is mounted at /rom,
which is on sys.path). The writer is mpremote's own (`mpremote romfs build` compiles sources
itself; these are compiled already, for the board's architecture). The image is written to a
temporary file and renamed: a reader never sees half of one."""

import sys
from pathlib import Path

from mpremote.romfs import VfsRomWriter


def build(root, files):
    tree = {}
    for f in files:
        parts = Path(f).resolve().relative_to(Path(root).resolve()).parts
        node = tree
        for d in parts[:-1]:
            node = node.setdefault(d, {})
        node[parts[-1]] = Path(f).read_bytes()
    writer = VfsRomWriter()
    _add(writer, tree)
    return writer.finalise()


def _add(writer, node):
    for name in sorted(node):
        if isinstance(node[name], dict):
            writer.opendir(name)
            _add(writer, node[name])
            writer.closedir()
        else:
            writer.mkfile(name, node[name])


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: romfs_image.py OUT ROOT FILE...")
    out, root, files = Path(argv[0]), argv[1], argv[2:]
    image = build(root, files)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(image)
    tmp.replace(out)
    print("romfs: %s, %d modules, %d bytes" % (out, len(files), len(image)))


if __name__ == "__main__":
    main(sys.argv[1:])
