"""One atomic file write for everything kept on flash (config.json, grid.json, wear.json): the
new text goes to a temporary file, which is then renamed over the old one, so a power cut
leaves the old file or the new one, whole. Imported by each save on its first run."""

import os


def write(path, data):
    """Writes data (a str, or a function that writes to the open file it is handed, for text
    streamed as it is made) to path + ".tmp", closes it (which flushes it) and renames it over
    path. Raises OSError (flash full or failing); the old file is then still there."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if callable(data):
            data(f)
        else:
            f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        # A filesystem that will not rename over an existing file (FAT on some ports): the old
        # one goes first, and a cut just then leaves only the temporary file.
        os.remove(path)
        os.rename(tmp, path)
