"""The App the REPL console works on: the one the boot built, or after a soft reset one built
from the board file and the saved config; and what every console shares: the one-line
Mistake, fresh measurements, channel names."""

import config

_app = None          # the App whose hardware the console reads (attached or built lazily)
path = config.FILE   # the config file cfg saves to and reads back


class Mistake(Exception):
    """An operator's mistake: printed as one line, nothing changed."""


def guard(fn):
    """fn with an expected mistake printed as `error: ...` instead of a traceback."""
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Mistake as e:
            print("error: %s" % e)
    return wrapped


def attach(app, config_path=config.FILE):
    """Points the console at a built App (console.attach also starts cfg's working copy
    afresh from its config; cfg.sync() does when it finds an App new to it)."""
    global _app, path
    _app = app
    path = config_path


def detach():
    """Forgets the App (start() builds a new one)."""
    global _app
    _app = None


def get_app():
    # After a soft reset (mpremote does one) nothing is attached: build the hardware from the
    # board file and the saved config; hw.build leaves every output off.
    global _app
    if _app is None:
        import app as app_mod
        if app_mod.last is not None:
            attach(app_mod.last)
            return _app
        import board
        import machine
        from clock import Clock
        loaded = config.load(path, board, log=lambda line: None)
        _app = app_mod.App(board, machine, Clock(), loaded.cfg, log=print,
                           safe_reason=loaded.safe_reason)
    return _app


def running():
    return _app is not None and _app.running


def measure(windows=1):
    """Fresh windows from the sampler when the controller is stopped; the latest otherwise."""
    app = get_app()
    if not running():
        for _ in range(windows):
            app.sampler.sample()
    return app.sampler


def channel(name):
    """The index of the board's channel `name`; a Mistake if there is none."""
    app = get_app()
    names = [ch["name"] for ch in app.board.CHANNELS]
    if name not in names:
        raise Mistake("channel must be one of %s, got %r" % (", ".join(names), name))
    return names.index(name)
