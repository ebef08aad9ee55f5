"""One atomic file write for everything kept on flash (config.json, grid.json, wear.json): the
new text goes to a temporary file, which is then renamed over the old one, so a power cut
leaves the old file or the new one, whole; read() finds whichever it is. Writes are imported
by each save on its first run."""

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
        # A file system that will not rename over an existing file: the old one is renamed
        # aside to path + ".bak", never removed before the new one is in place, so a cut at
        # any step leaves one whole file under a name read() tries.
        bak = path + ".bak"
        try:
            os.remove(bak)           # a stale one from an earlier cut
        except OSError:
            pass
        os.rename(path, bak)
        os.rename(tmp, path)
        os.remove(bak)


def read(path):
    """The text of path; if it is missing, of path + ".bak" (the old file a cut inside
    write()'s fallback left set aside). Raises OSError when neither is there. A .tmp is never
    read: it may be half written."""
    try:
        f = open(path)
    except OSError:
        f = open(path + ".bak")
    with f:
        return f.read()
