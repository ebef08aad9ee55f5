"""The installer's console at the REPL, every name it offers in one place (main.py does
`from console import *` once the controller stops): status(), loads(), cfg (show, set, save,
revert, confirm), cal (current and voltage calibration against a clamp meter), grid (capacity
signals: show, reserve, emergency, log), shed_test(), clear_alarm() and start(). Expected
mistakes print one `error: ...` line and change nothing.

The console runs while the controller is stopped (Ctrl-C at the REPL): every output is safe
then, and cal and shed_test take their own measurements. start() or Ctrl-D runs it again.
Each console is a module of its own: consoleapp.py (the App it works on), consolecfg.py,
consolecal.py, consolegrid.py and consolestatus.py."""

import config
import consoleapp
from consoleapp import Mistake  # noqa: F401
from consolecal import cal  # noqa: F401
from consolecfg import cfg
from consolestatus import (clear_alarm, loads, shed_test, status,  # noqa: F401
                           status_dict)


def attach(app, path=config.FILE):
    """Points the console at a built App: cfg's working copy starts afresh from its config."""
    consoleapp.attach(app, path)
    cfg.start_from(app)


class _GridOnFirstUse:
    """`grid` at the REPL. The grid console (consolegrid.py, 3.6 KB on the 32-bit port) is
    imported at its first use, like grid.py itself: most panels have no grid signals."""

    def __getattr__(self, name):
        import consolegrid
        return getattr(consolegrid.grid, name)


grid = _GridOnFirstUse()


def start():
    """Runs the controller with the saved configuration (as at boot)."""
    if cfg.work is not None and cfg.changes():
        print("error: unsaved changes (%s): cfg.save() or cfg.revert() first" % ", ".join(
            cfg.changes()))
        return
    import app as app_mod
    consoleapp.detach()
    app_mod.last = None
    app_mod.run()
