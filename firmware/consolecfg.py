"""The configuration console `cfg`: a working copy of the settings edited at the REPL
(show, set, confirm, add_load, remove_load), written to flash only by save(), read back by
revert(), and a copied file taken by push()."""

import os

import config
import consoleapp
from consoleapp import Mistake, guard

def _split(key, work):
    """(schema row, the dict in `work` that holds it, field) for a dotted key."""
    if not isinstance(key, str):
        raise Mistake("key must be a string like 'panel_rating_a' or 'loads.ev.max_a', "
                      "got %r" % (key,))
    parts = key.split(".")
    if len(parts) == 1:
        row = config._row(config.TOP, key)
        if row is None:
            raise Mistake("unknown setting %r (cfg.show() lists them)" % key)
        return row, work, key
    if len(parts) == 3 and parts[0] == "ct":
        ct = work["ct"].get(parts[1])
        if ct is None:
            raise Mistake("no CT channel %r (%s)" % (parts[1], ", ".join(sorted(work["ct"]))))
        row = config._row(config.CT, parts[2])
        if row is None:
            raise Mistake("unknown CT setting %r (%s)" % (
                parts[2], ", ".join(r[0] for r in config.CT)))
        return row, ct, parts[2]
    if len(parts) == 3 and parts[0] == "loads":
        spec = config.find_load(work, parts[1])
        if spec is None:
            raise Mistake("no load %r (%s)" % (parts[1], ", ".join(
                s["name"] for s in work["loads"])))
        row = config._row(config.LOAD, parts[2])
        if row is None:
            raise Mistake("unknown load setting %r (%s)" % (
                parts[2], ", ".join(r[0] for r in config.LOAD)))
        return row, spec, parts[2]
    raise Mistake("key must be 'name', 'ct.<channel>.<name>' or 'loads.<load>.<name>', "
                  "got %r" % key)


def _fmt(row, value):
    if row[1] == "secret":
        return "***" if value else "''"
    if row[1] == "float":
        return "%.4f" % value
    return repr(value)


class Cfg:
    """The working copy of the configuration. set() changes it in RAM; save() writes it to
    flash; revert() reads flash back. The panel limit needs confirm() (NEC 750.30(C)(3))."""

    def __init__(self):
        self.work = None
        self.saved = None
        self._pending = None     # (key, value, code) of a protected change awaiting confirm
        self.written = False     # saved since the App was built: a restart applies it
        self._app = None         # the App whose config the working copy started from

    def sync(self):
        """The App the console works on. One new to the working copy (found after a boot,
        built after a soft reset, started again) starts it afresh from its config."""
        app = consoleapp.get_app()
        if app is not self._app:
            self.start_from(app)
        return app

    def start_from(self, app):
        """The working copy and the saved one: `app`'s config, nothing pending or written."""
        self._app = app
        self.work = config.copy(app.cfg)
        self.saved = config.copy(app.cfg)
        self._pending = None
        self.written = False

    def changes(self):
        """The settings changed since the last save."""
        work, saved = self.work, self.saved
        out = [k for k in work if k not in ("ct", "loads") and work[k] != saved.get(k)]
        if work["ct"] != saved["ct"]:
            out.append("ct")
        if work["loads"] != saved["loads"]:
            out.append("loads")
        return out

    @guard
    def show(self, key=None):
        """Every setting with its value, unit and help; `*` marks an unsaved change,
        `P` a protected one."""
        self.sync()
        if key is not None and not isinstance(key, str):
            raise Mistake("key must be a string like 'band_pct' or 'loads.ev', got %r" % (key,))
        work, saved = self.work, self.saved
        rows = []
        if key is None or key in [r[0] for r in config.TOP]:
            for row in config.TOP:
                if key is None or row[0] == key:
                    rows.append((row[0], row, work[row[0]], saved.get(row[0])))
        if key is None or key == "ct" or key.startswith("ct."):
            for name in sorted(work["ct"]):
                for row in config.CT:
                    full = "ct.%s.%s" % (name, row[0])
                    if key in (None, "ct", full, "ct." + name):
                        rows.append((full, row, work["ct"][name][row[0]],
                                     saved["ct"].get(name, {}).get(row[0])))
        if key is None or key == "loads" or key.startswith("loads."):
            for spec in work["loads"]:
                old = config.find_load(saved, spec["name"]) or {}
                for row in config.LOAD:
                    full = "loads.%s.%s" % (spec["name"], row[0])
                    if row[0] in spec and key in (None, "loads", full,
                                                  "loads." + spec["name"]):
                        rows.append((full, row, spec[row[0]], old.get(row[0])))
        if not rows:
            raise Mistake("unknown setting %r (cfg.show() lists them)" % key)
        for full, row, value, old in rows:
            mark = ("*" if value != old else " ") + ("P" if row[0] in config.PROTECTED else " ")
            unit = (" " + row[4]) if row[4] else ""
            print("%s %-28s %-14s %s" % (mark, full, _fmt(row, value) + unit, row[6]))
        print("setpoint %d W (panel %d A, %d x %d V); saved file %s%s" % (
            config.setpoint_w(work), work["panel_rating_a"], config.legs(work), work["volts"],
            consoleapp.path, "; unsaved changes: " + ", ".join(self.changes())
            if self.changes() else ""))

    @guard
    def set(self, key, value):
        """Changes one setting in RAM (cfg.save() writes it). A load setting set to None is
        removed (switching a load from output to driver)."""
        self.sync()
        if isinstance(key, str) and key.count(".") == 1 and key.startswith("loads."):
            self._replace_load(key[6:], value)
            return
        row, target, field = _split(key, self.work)
        if value is None and target is not self.work and row[5] is None \
                and field not in ("name", "kind", "priority", "leg", "rated_w"):
            new_value = None
        else:
            try:
                new_value = config.check(row, value)
            except ValueError as e:
                raise Mistake(str(e))
        trial = config.copy(self.work)
        _, trial_target, _ = _split(key, trial)
        if new_value is None:
            trial_target.pop(field, None)
        else:
            trial_target[field] = new_value
        errors = config.validate(trial, self._app.board)
        if errors:
            raise Mistake(errors[0])
        if target is self.work and field in config.PROTECTED:
            code = "%04d" % (int.from_bytes(os.urandom(2), "little") % 10000)
            self._pending = (key, new_value, code)
            print("%s is protected (NEC 750.30(C)(3)): setpoint %d W -> %d W. Check the panel "
                  "label, then type cfg.confirm('%s')" % (
                      key, config.setpoint_w(self.work), config.setpoint_w(trial), code))
            return
        self.work = trial
        print("%s = %s (unsaved: cfg.save() writes it)" % (key, _fmt(row, new_value)))

    def _replace_load(self, name, spec):
        # cfg.set('loads.ev', {...}): a whole load at once, e.g. from a pilot to a contactor.
        old = config.find_load(self.work, name)
        if old is None:
            raise Mistake("no load %r (%s)" % (name, ", ".join(
                s["name"] for s in self.work["loads"])))
        if not isinstance(spec, dict):
            raise Mistake("loads.%s must be a dict of load settings, got %r" % (name, spec))
        trial = config.copy(self.work)
        new = dict(spec)
        new.setdefault("name", name)
        trial["loads"][self.work["loads"].index(old)] = new
        self._adopt(trial)
        print("loads.%s replaced (unsaved: cfg.save() writes it)" % name)

    def _adopt(self, trial):
        # A changed copy of the working config replaces it only if it validates: a mistake
        # changes nothing.
        errors = config.validate(trial, self._app.board)
        if errors:
            raise Mistake(errors[0])
        self.work = trial

    @guard
    def confirm(self, code):
        """Applies the protected change that cfg.set() staged."""
        self.sync()
        if self._pending is None:
            raise Mistake("nothing to confirm: cfg.set() a protected setting first")
        key, value, expected = self._pending
        if str(code) != expected:
            raise Mistake("wrong confirmation code; %s stays %r" % (key, self.work[key]))
        self._pending = None
        trial = config.copy(self.work)
        trial[key] = value
        self._adopt(trial)
        print("%s = %r, setpoint %d W (unsaved: cfg.save() writes it)" % (
            key, value, config.setpoint_w(trial)))

    @guard
    def add_load(self, name, **fields):
        """Adds a load: cfg.add_load('dryer', kind='onoff', priority=3, leg='L1L2',
        rated_w=5000, output=1)."""
        self.sync()
        if not isinstance(name, str) or config.find_load(self.work, name) is not None:
            raise Mistake("load name must be a new string, got %r" % (name,))
        trial = config.copy(self.work)
        spec = {"name": name}
        spec.update(fields)
        trial["loads"].append(spec)
        self._adopt(trial)
        print("added load %s (unsaved: cfg.save() writes it)" % name)

    @guard
    def remove_load(self, name):
        self.sync()
        spec = config.find_load(self.work, name)
        if spec is None:
            raise Mistake("no load %r" % (name,))
        self.work["loads"].remove(spec)
        print("removed load %s (unsaved: cfg.save() writes it)" % name)

    @guard
    def save(self):
        """Writes the working copy to flash (temporary file, then rename)."""
        self.sync()
        path = consoleapp.path
        errors = config.validate(self.work, self._app.board)
        if errors:
            raise Mistake("%s (not saved%s)" % (errors[0], "; %d more problems" % (
                len(errors) - 1) if len(errors) > 1 else ""))
        if self._pending is not None:
            print("note: %s is still awaiting cfg.confirm(); saving without it" %
                  self._pending[0])
        try:
            config.save(self.work, path)
        except OSError as e:
            raise Mistake("cannot write %s: %s" % (path, e))
        changed = self.changes()
        self.saved = config.copy(self.work)
        self.written = True
        print("saved %s (%s). start() or Ctrl-D runs the controller with it; setpoint %d W" % (
            path, ", ".join(changed) if changed else "no changes", config.setpoint_w(self.work)))

    @guard
    def revert(self):
        """Drops unsaved changes: the working copy is read back from flash."""
        self.sync()
        path = consoleapp.path
        loaded = _read(path, self._app.board)
        if loaded.safe_reason:
            raise Mistake("%s: %s%s; keeping the working copy" % (
                path, loaded.safe_reason, _more(loaded)))
        _say_rejected(path, loaded)
        self.work = config.copy(loaded.cfg)
        self.saved = config.copy(loaded.cfg)
        self._pending = None
        print("reverted to %s; setpoint %d W" % (path, config.setpoint_w(self.work)))

    @guard
    def push(self, path):
        """Takes a config file copied to the board (make config-push): validates it, refuses
        protected changes (those need cfg.set and cfg.confirm at the REPL), then saves."""
        self.sync()
        if not isinstance(path, str):
            raise Mistake("path must be the name of the copied file, like 'new.json', got %r; "
                          "nothing changed" % (path,))
        loaded = _read(path, self._app.board)
        if loaded.safe_reason:
            raise Mistake("push of %s refused: %s%s; %s and the running configuration are "
                          "unchanged" % (path, loaded.safe_reason, _more(loaded),
                                         consoleapp.path))
        for key in config.PROTECTED:
            if loaded.cfg[key] != self.saved[key]:
                raise Mistake("%s would change %r -> %r: protected, set it at the REPL with "
                              "cfg.set() and cfg.confirm(); nothing changed" % (
                                  key, self.saved[key], loaded.cfg[key]))
        _say_rejected(path, loaded)
        self.work = config.copy(loaded.cfg)
        self.save()


def _read(path, board):
    """A config file parsed. Not config.load(): that one speaks for the boot ("no
    configuration saved yet", "SAFE MODE"), this one for a file named here."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise Mistake("%s: %s; nothing changed" % (
            path, "no such file" if e.args[0] == 2 else "cannot read it (%s)" % e))
    except UnicodeError:
        return config.Loaded(config.defaults(board), [], config.NOT_TEXT)
    return config.parse(text, board)


def _say_rejected(path, loaded):
    # The keys of a file taken that fell back to their defaults, one line each. A file
    # refused is one line (the first problem, and how many there are: _more).
    for line in loaded.rejected:
        print("%s: rejected %s" % (path, line))


def _more(loaded):
    n = len(loaded.rejected)
    return " (%d problems in all)" % n if n > 1 else ""


cfg = Cfg()
