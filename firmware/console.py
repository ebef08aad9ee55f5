"""The installer's console at the REPL: status(), loads(), cfg (show, set, save, revert,
confirm), cal (current and voltage calibration against a clamp meter), grid (capacity
signals: show, reserve, emergency, log), shed_test() and start(). Expected mistakes
print one `error: ...` line and change nothing.

The console runs while the controller is stopped (Ctrl-C at the REPL): every output is safe
then, and cal and shed_test take their own measurements. start() or Ctrl-D runs it again."""

import os

import config

_app = None          # the App whose hardware the console reads (attached or built lazily)
_path = config.FILE


class Mistake(Exception):
    """An operator's mistake: printed as one line, nothing changed."""


def _guard(fn):
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Mistake as e:
            print("error: %s" % e)
    return wrapped


def attach(app, path=config.FILE):
    """Points the console at a built App (app.run() does this at boot)."""
    global _app, _path
    _app = app
    _path = path
    cfg._reset(app.cfg)


def _get_app():
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
        loaded = config.load(_path, board, log=lambda line: None)
        _app = app_mod.App(board, machine, Clock(), loaded.cfg, log=print,
                           safe_reason=loaded.safe_reason)
        cfg._reset(loaded.cfg)
    return _app


def _running():
    return _app is not None and _app.running


def _measure(windows=1):
    """Fresh windows from the sampler when the controller is stopped; the latest otherwise."""
    app = _get_app()
    if not _running():
        for _ in range(windows):
            app.sampler.sample()
    return app.sampler


def _channel(name):
    app = _get_app()
    names = [ch["name"] for ch in app.board.CHANNELS]
    if name not in names:
        raise Mistake("channel must be one of %s, got %r" % (", ".join(names), name))
    return names.index(name)


# --- configuration ----------------------------------------------------------------------

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


def _board():
    return _app.board if _app is not None else None


class Cfg:
    """The working copy of the configuration. set() changes it in RAM; save() writes it to
    flash; revert() reads flash back. The panel limit needs confirm() (NEC 750.30(C)(3))."""

    def __init__(self):
        self.work = None
        self.saved = None
        self._pending = None     # (key, value, code) of a protected change awaiting confirm
        self.written = False     # saved since the App was built: a restart applies it

    def _reset(self, cfg):
        self.work = config.copy(cfg)
        self.saved = config.copy(cfg)
        self._pending = None
        self.written = False

    def _ensure(self):
        if self.work is None:
            _get_app()

    def _changes(self):
        work, saved = self.work, self.saved
        out = [k for k in work if k not in ("ct", "loads") and work[k] != saved.get(k)]
        if work["ct"] != saved["ct"]:
            out.append("ct")
        if work["loads"] != saved["loads"]:
            out.append("loads")
        return out

    @_guard
    def show(self, key=None):
        """Every setting with its value, unit and help; `*` marks an unsaved change,
        `P` a protected one."""
        self._ensure()
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
            _path, "; unsaved changes: " + ", ".join(self._changes()) if self._changes()
            else ""))

    @_guard
    def set(self, key, value):
        """Changes one setting in RAM (cfg.save() writes it). A load setting set to None is
        removed (switching a load from output to driver)."""
        self._ensure()
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
        errors = config.validate(trial, _board())
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
        errors = config.validate(trial, _board())
        if errors:
            raise Mistake(errors[0])
        self.work = trial

    @_guard
    def confirm(self, code):
        """Applies the protected change that cfg.set() staged."""
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

    @_guard
    def add_load(self, name, **fields):
        """Adds a load: cfg.add_load('dryer', kind='onoff', priority=3, leg='L1L2',
        rated_w=5000, output=1)."""
        self._ensure()
        if not isinstance(name, str) or config.find_load(self.work, name) is not None:
            raise Mistake("load name must be a new string, got %r" % (name,))
        trial = config.copy(self.work)
        spec = {"name": name}
        spec.update(fields)
        trial["loads"].append(spec)
        self._adopt(trial)
        print("added load %s (unsaved: cfg.save() writes it)" % name)

    @_guard
    def remove_load(self, name):
        self._ensure()
        spec = config.find_load(self.work, name)
        if spec is None:
            raise Mistake("no load %r" % (name,))
        self.work["loads"].remove(spec)
        print("removed load %s (unsaved: cfg.save() writes it)" % name)

    @_guard
    def save(self):
        """Writes the working copy to flash (temporary file, then rename)."""
        self._ensure()
        errors = config.validate(self.work, _board())
        if errors:
            raise Mistake("%s (not saved%s)" % (errors[0], "; %d more problems" % (
                len(errors) - 1) if len(errors) > 1 else ""))
        if self._pending is not None:
            print("note: %s is still awaiting cfg.confirm(); saving without it" %
                  self._pending[0])
        try:
            config.save(self.work, _path)
        except OSError as e:
            raise Mistake("cannot write %s: %s" % (_path, e))
        changed = self._changes()
        self.saved = config.copy(self.work)
        self.written = True
        print("saved %s (%s). start() or Ctrl-D runs the controller with it; setpoint %d W" % (
            _path, ", ".join(changed) if changed else "no changes", config.setpoint_w(self.work)))

    @_guard
    def revert(self):
        """Drops unsaved changes: the working copy is read back from flash."""
        self._ensure()
        loaded = _read(_path)
        if loaded.safe_reason:
            raise Mistake("%s: %s; keeping the working copy" % (_path, loaded.safe_reason))
        self.work = config.copy(loaded.cfg)
        self.saved = config.copy(loaded.cfg)
        self._pending = None
        print("reverted to %s; setpoint %d W" % (_path, config.setpoint_w(self.work)))

    @_guard
    def push(self, path):
        """Takes a config file copied to the board (make config-push): validates it, refuses
        protected changes (those need cfg.set and cfg.confirm at the REPL), then saves."""
        self._ensure()
        loaded = _read(path)
        if loaded.safe_reason:
            raise Mistake("push of %s refused: %s; %s and the running configuration are "
                          "unchanged" % (path, loaded.safe_reason, _path))
        for key in config.PROTECTED:
            if loaded.cfg[key] != self.saved[key]:
                raise Mistake("%s would change %r -> %r: protected, set it at the REPL with "
                              "cfg.set() and cfg.confirm(); nothing changed" % (
                                  key, self.saved[key], loaded.cfg[key]))
        self.work = config.copy(loaded.cfg)
        self.save()


def _read(path):
    """A config file parsed, its rejected keys printed. Not config.load(): that one speaks for
    the boot ("no configuration saved yet", "SAFE MODE"), this one for a file named here."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise Mistake("%s: %s; nothing changed" % (
            path, "no such file" if e.args[0] == 2 else "cannot read it (%s)" % e))
    loaded = config.parse(text, _board())
    for line in loaded.rejected:
        print("%s: rejected %s" % (path, line))
    return loaded


cfg = Cfg()


# --- calibration ------------------------------------------------------------------------

class Cal:
    """Calibration against a reference: clamp a meter on the same wire as the CT, read it,
    and give the reading. The new gain applies at once; cfg.save() keeps it."""

    _WINDOWS = 5

    def _average(self, index):
        # Five fresh windows; `index` is a CT channel, or None for the voltage.
        total = 0
        for _ in range(self._WINDOWS):
            meter = _measure(1).meter
            total += meter.vrms_mv if index is None else meter.irms_ma[index]
        return total // self._WINDOWS

    @_guard
    def current(self, channel, amps):
        """cal.current('CT3', 18.4): the clamp meter reads 18.4 A on CT3's wire."""
        index = _channel(channel)
        app = _get_app()
        ch = app.board.CHANNELS[index]
        if ch["kind"] != "ct":
            raise Mistake("%s is the voltage channel: use cal.voltage(volts)" % channel)
        if not isinstance(amps, (int, float)) or isinstance(amps, bool) or amps <= 0:
            raise Mistake("amps must be the clamp meter's reading, a number > 0, got %r"
                          % (amps,))
        rating = cfg.work["ct"][channel]["rating_a"]
        if amps * 20 < rating:
            raise Mistake("%.1f A is under 5 %% of %s's %d A rating: switch on a bigger load "
                          "for an accurate gain" % (amps, channel, rating))
        measured_ma = self._average(index)
        if measured_ma * 40 < rating * 1000:      # under 2.5 % of the rating
            raise Mistake("%s reads %.2f A: is the CT on the wire the clamp meter is on?" % (
                channel, measured_ma / 1000))
        old = app.meter.calibration(index)["gain"]
        gain = old * amps * 1000 / measured_ma
        if not 0.5 <= gain <= 2.0:
            raise Mistake("%s reads %.2f A against %.2f A: gain %.3f is outside 0.5..2; check "
                          "the CT's ratio and burden in the board file" % (
                              channel, measured_ma / 1000, amps, gain))
        app.meter.calibrate(index, gain=gain)
        cfg.work["ct"][channel]["gain"] = gain
        print("%s: read %.2f A, reference %.2f A: gain %.4f -> %.4f (cfg.save() keeps it)" % (
            channel, measured_ma / 1000, amps, old, gain))

    @_guard
    def voltage(self, volts):
        """cal.voltage(121.5): a multimeter reads 121.5 V line to neutral."""
        app = _get_app()
        vch = [i for i, ch in enumerate(app.board.CHANNELS) if ch["kind"] == "v"]
        if not vch:
            raise Mistake("board %s has no voltage channel" % app.board.NAME)
        if not isinstance(volts, (int, float)) or isinstance(volts, bool) \
                or not 50 <= volts <= 300:
            raise Mistake("volts must be the multimeter's reading in 50..300 V, got %r"
                          % (volts,))
        measured_mv = self._average(None)
        old = app.meter.calibration(vch[0])["gain"]
        if measured_mv <= 0:
            raise Mistake("no AC on the voltage channel: check the AC adapter")
        gain = old * volts * 1000 / measured_mv
        if not 0.5 <= gain <= 2.0:
            raise Mistake("reads %.1f V against %.1f V: gain %.3f is outside 0.5..2" % (
                measured_mv / 1000, volts, gain))
        app.meter.calibrate(vch[0], gain=gain)
        cfg.work["v_gain"] = gain
        print("voltage: read %.1f V, reference %.1f V: gain %.4f -> %.4f (cfg.save() keeps it)"
              % (measured_mv / 1000, volts, old, gain))

    @_guard
    def show(self):
        app = _get_app()
        s = _measure(1)
        for i, ch in enumerate(app.board.CHANNELS):
            c = app.meter.calibration(i)
            reading = ("%.1f V" % (s.meter.vrms_mv / 1000)) if ch["kind"] == "v" else (
                "%.2f A" % (s.meter.irms_ma[i] / 1000))
            print("%-4s gain %.4f phase %+.1f deg  reads %s" % (
                ch["name"], c["gain"], c["phase_deg"], reading))


cal = Cal()


# --- grid signals -----------------------------------------------------------------------

class GridConsole:
    """Grid capacity signals at the REPL (docs/grid.md): grid.show(), grid.reserve(start,
    duration_s, extra_w, max_fee_cents=0), grid.accept(id), grid.cancel(id),
    grid.emergency(share_pct, duration_s), grid.log(). With the controller stopped, a
    request is exchanged over MQTT right away (up to wait_s); running, the grid task sends it."""

    def _grid(self):
        app = _get_app()
        g = app.get_grid()
        now = app.clock.ticks_ms()
        if not g.wall_known():
            unix_s = app.wall()
            if unix_s is not None:
                g.set_wall(unix_s, now)
        g.update(now)
        return app, g, now

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except ValueError as e:
            raise Mistake(str(e))

    @_guard
    def show(self):
        """The limits in force, the schedule, subscription, reservations and answers."""
        app, g, now = self._grid()
        st = g.state(now)
        print("limit in force %s W, set by %s; sources %s" % (
            app.limits.effective_w(now), app.limits.strictest(), app.limits.in_force_w()))
        print("wall clock %s; import limit %s W / %s A from the %s (%d intervals, next "
              "change in %s s); export limit %s W" % (
                  g._show(g.mono_s(now)) if st["wall_clock"] else "unknown", st["import_limit_w"],
                  st["import_limit_a"], st["limit_from"], st["intervals"],
                  st["next_change_s"], st["export_limit_w"]))
        print("subscription %s W, now %s W; emergency %s W for %d s; %d awaiting an answer" % (
            st["subscription_w"], st["subscription_now_w"], st["emergency_w"],
            st["emergency_s"], st["pending"]))
        for r in g.reservations:
            print("  reservation %s: %s .. %s +%d W, fee %d cents" % (
                r[4], g._show(r[0]), g._show(r[1]), r[2], r[3]))
        for a in g.answers:
            print("  answer %s" % a)

    @_guard
    def reserve(self, start, duration_s, extra_w, max_fee_cents=0, wait_s=15):
        """grid.reserve('2026-11-26T18:00:00Z', 4 * 3600, 3000): extra_w above the
        subscription for that window, if the grid grants it. start None: now."""
        app, g, now = self._grid()
        rid = self._call(g.reserve, start, duration_s, extra_w, now, max_fee_cents)
        return self._await(app, g, rid, wait_s)

    @_guard
    def accept(self, rid, wait_s=15):
        """Asks again for a window answered with a fee, agreeing to pay that fee."""
        app, g, now = self._grid()
        return self._await(app, g, self._call(g.accept, rid, now), wait_s)

    @_guard
    def cancel(self, rid):
        app, g, now = self._grid()
        self._call(g.cancel, rid, now)
        print("reservation %s cancelled" % rid)

    @_guard
    def emergency(self, share_pct, duration_s=3600):
        """Holds demand at share_pct of the subscription (None: ends it), from now."""
        app, g, now = self._grid()
        w = self._call(g.emergency, share_pct, duration_s, now)
        print("emergency ended" if w is None else "emergency: %d W for %d s" % (w, duration_s))

    @_guard
    def log(self):
        """The compliance log on flash, oldest first."""
        app, g, now = self._grid()
        n = 0
        for line in g.monitor.log.read():
            print(line)
            n += 1
        print("%d entries" % n)

    def _await(self, app, g, rid, wait_s):
        if _running():
            print("request %s queued; the grid task sends it (grid.show() for the answer)" % rid)
            return rid
        if not app.cfg["mqtt_host"]:
            raise Mistake("no mqtt_host: a reservation request needs the grid's broker")
        import asyncio
        if getattr(app, "mqtt", None) is None:
            app.network_entries()
        if getattr(app, "grid_task", None) is None:
            import grid as grid_mod
            app.grid_task = grid_mod.GridTask(app, app.mqtt, app.cfg["mqtt_topic"],
                                              app.cfg["control_period_ms"])
        print("request %s: asking the grid (up to %d s)..." % (rid, wait_s))

        async def talk():
            tasks = [asyncio.create_task(app.mqtt.run()),
                     asyncio.create_task(app.reporter.run()),
                     asyncio.create_task(app.grid_task.run())]
            t0 = app.clock.ticks_ms()
            while rid in g.pending and \
                    app.clock.ticks_diff(app.clock.ticks_ms(), t0) < wait_s * 1000:
                await asyncio.sleep_ms(100)
            await asyncio.sleep_ms(300)     # the event goes out too
            for t in tasks:
                t.cancel()
            app.mqtt.deinit()
        asyncio.run(talk())
        for a in g.answers:
            if a["id"] == rid:
                print("answer: %s" % a)
                return rid
        print("no answer yet; grid.show() later")
        return rid


grid = GridConsole()


# --- status, loads, tests ---------------------------------------------------------------

def status_dict():
    """What status() prints, for telemetry: the safe-mode reason travels with it."""
    app = _get_app()
    s = app.sampler
    return {"state": "safe mode" if app.safe_reason else (
        "running" if app.running else "stopped"),
        "safe_reason": app.safe_reason, "setpoint_w": app.setpoint_w,
        "panel_rating_a": app.cfg["panel_rating_a"], "valid": s.valid,
        "total_w": s.total_w, "leg_ma": list(s.leg_ma),
        "loads": [(b.load.name, control_binding_state(b)) for b in app.bindings]}


def control_binding_state(binding):
    a = binding.actuator
    if hasattr(a, "amps"):
        return "%d A" % a.amps if a.amps else "paused"
    return "on" if a.is_on else "off"


def status():
    """One screen for the installer: version, state, setpoint (for the label), power."""
    from version import VERSION
    app = _get_app()
    c, setpoint, later = app.cfg, app.setpoint_w, ""
    if cfg.written:
        # What the next start runs, not what was built at boot: the label takes this one.
        c, setpoint = cfg.saved, config.setpoint_w(cfg.saved)
        later = "; saved in %s: start() or Ctrl-D applies it" % _path
    if app.safe_reason:
        state = "SAFE MODE: every controllable load shed" + (
            " until start() or Ctrl-D runs the configuration saved since" if cfg.written
            else ": " + app.safe_reason)
    elif app.running:
        state = "running"
    else:
        state = "stopped: every output safe; start() or Ctrl-D runs the controller"
    print("panelcap %s on %s (last reset: %s): %s" % (VERSION, app.board.NAME,
                                                     app.reset_cause, state))
    print("setpoint %d W (panel %d A, %d x %d V, restore %d %% below)%s" % (
        setpoint, c["panel_rating_a"], config.legs(c), c["volts"], c["band_pct"], later))
    s = _measure(1)
    print("panel %d W, L1 %.1f A, L2 %.1f A, measurement %s" % (
        s.total_w, s.leg_ma[0] / 1000, s.leg_ma[1] / 1000, "valid" if s.valid else "INVALID"))
    ops = app.wear.totals() if app.wear is not None else {}
    for name, contactor in app.contactors:
        ops.setdefault(name, contactor.ops)
    watches = app.monitor.watches if app.monitor is not None else ()
    for b in app.bindings:
        name = b.load.name
        extra = ""
        if name in ops:
            extra += ", %d contactor ops" % ops[name]
        for w in watches:
            if w.load.name == name and (w.alarm or w.no_draw):
                extra += ", ALARM %s (clear_alarm(%r) once fixed)" % (w.alarm, name) \
                    if w.alarm else ", on but drawing nothing"
        print("  %-14s %s%s" % (name, control_binding_state(b), extra))
    if cfg.work is not None and cfg._changes():
        print("unsaved changes: %s" % ", ".join(cfg._changes()))


def loads():
    """The configured loads, in shed order, with what each is doing now."""
    app = _get_app()
    print("%-14s %-9s %4s %-5s %7s %-8s %-5s %s" % (
        "load", "kind", "prio", "leg", "rated", "drive", "ct", "now"))
    specs = sorted(cfg.work["loads"] if cfg.work else app.cfg["loads"],
                   key=lambda s: -s["priority"])
    for spec in specs:
        drive = "K%d" % (spec["output"] + 1) if "output" in spec else spec.get("driver", "-")
        now = "-"
        for b in app.bindings:
            if b.load.name == spec["name"]:
                now = control_binding_state(b)
                if b.load.measured_w >= 0:
                    now += ", %d W" % b.load.measured_w
        print("%-14s %-9s %4d %-5s %6dW %-8s %-5s %s" % (
            spec["name"], spec["kind"], spec["priority"], spec["leg"], spec["rated_w"], drive,
            spec.get("ct") or "-", now))
    print("higher priority numbers are shed first")


@_guard
def shed_test(name, seconds=5):
    """With the controller stopped: switches one load on for `seconds`, then sheds it for
    `seconds`, measuring both, so the installer sees that the right contactor (or pilot)
    drives the right load and CT. Refused if switching it on could pass the setpoint."""
    app = _get_app()
    if _running():
        raise Mistake("stop the controller first (Ctrl-C)")
    if app.safe_reason:
        raise Mistake("safe mode: %s" % app.safe_reason)
    if not isinstance(seconds, int) or not 1 <= seconds <= 30:
        raise Mistake("seconds must be an int in 1..30 s, got %r" % (seconds,))
    binding = None
    for b in app.bindings:
        if b.load.name == name:
            binding = b
    if binding is None:
        raise Mistake("no load %r (%s)" % (name, ", ".join(b.load.name for b in app.bindings)))
    load = binding.load
    if load.kind == 2:
        raise Mistake("%s is a 'never' load: nothing to shed" % name)
    before = _measure(1)
    if not before.valid:
        raise Mistake("the measurement is invalid; fix metering before a shed test")
    if before.total_w + load.rated_w > app.setpoint_w:
        raise Mistake("%s (%d W) on top of %d W would pass the %d W setpoint" % (
            name, load.rated_w, before.total_w, app.setpoint_w))
    try:
        load.on = True
        load.setpoint_a = getattr(load, "max_a", 0)
        binding.actuator.apply(load)
        on_w, on_ct = _hold(binding, seconds)
        load.on = False
        load.setpoint_a = 0
        binding.actuator.apply(load)
        off_w, off_ct = _hold(binding, seconds)
    finally:
        binding.actuator.safe()
        load.on = False
    print("%s: on %d W, shed %d W: drop %d W (rated %d W)%s" % (
        name, on_w, off_w, on_w - off_w, load.rated_w,
        "" if on_ct is None else "; its CT read %d W then %d W" % (on_ct, off_ct)))


def _hold(binding, seconds):
    clock = _app.clock
    end = clock.ticks_add(clock.ticks_ms(), seconds * 1000)
    s = _measure(1)
    while clock.ticks_diff(end, clock.ticks_ms()) > 0:
        clock.sleep_ms(200)
        s = _measure(1)
    ct = binding.ct_index
    return s.total_w, (s.meter.p_w[ct] if ct >= 0 else None)


def clear_alarm(name):
    """After replacing a welded contactor: the load is controlled again."""
    app = _get_app()
    if app.monitor is None or not app.monitor.clear(name):
        print("error: no alarm on %r" % (name,))


def start():
    """Runs the controller with the saved configuration (as at boot)."""
    if cfg.work is not None and cfg._changes():
        print("error: unsaved changes (%s): cfg.save() or cfg.revert() first" % ", ".join(
            cfg._changes()))
        return
    global _app
    import app as app_mod
    _app = app_mod.last = None
    app_mod.run()
