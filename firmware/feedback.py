"""Compares what each load was told with what it does. A contactor commanded off whose load
still draws, or whose auxiliary contact stays closed, is welded; an MQTT charger that stopped
confirming is lost: both are handed to the controller as uncontrollable, so it sheds others.
Commanded on with no draw is reported (thermostat satisfied, or a wiring fault). Pure logic."""

from micropython import const

_WINDOWS = const(3)              # consecutive measurement windows that must agree
_NO_DRAW_WINDOWS = const(60)     # commanded on, drawing nothing this many windows: reported
_CLEAR_WINDOWS = const(30)       # aux contact open and no draw this long: a weld cleared
_DRAW_W = const(100)             # a load's own CT above this: the load draws

WELDED = "welded"                # commanded off, still closed or drawing
NO_CLOSE = "no_close"            # commanded on, auxiliary contact open: coil or wiring fault
LOST = "lost"                    # MQTT charger silent past its timeout


class Watch:
    """One load under watch: its contactor (and aux contact), or its MQTT charger or profile
    sensor (loadsensor.py: confirmed(now) and actual_ma, as a charger)."""

    def __init__(self, load, contactor=None, aux=None, charger=None):
        self.load = load
        self.contactor = contactor
        self.aux = aux
        self.charger = charger
        self.last_on = False
        self.bad = 0             # consecutive windows disagreeing with the command
        self.idle = 0            # consecutive windows on without draw
        self.alarm = None        # WELDED, NO_CLOSE, LOST or None
        self.no_draw = False


class Monitor:
    """check(sampler) once per control step, after the loads' measured_w are set and before
    the controller's update. controller: the shed.Controller (set_uncontrollable)."""

    def __init__(self, controller, clock, log=print):
        self.controller = controller
        self._clock = clock
        self._log = log
        self.watches = []
        self._windows = -1

    def add(self, load, contactor=None, aux=None, charger=None):
        w = Watch(load, contactor, aux, charger)
        self.watches.append(w)
        return w

    def check(self, sampler):
        windows = sampler.windows
        new = windows != self._windows and sampler.valid
        self._windows = windows
        for w in self.watches:
            if w.charger is not None:
                self._check_charger(w)
            elif new:
                self._check_contactor(w)

    def _check_contactor(self, w):
        on = w.contactor.is_on
        if on != w.last_on:
            # A window taken across the change proves nothing: start counting afresh.
            w.last_on = on
            w.bad = w.idle = 0
            return
        load = w.load
        m = load.measured_w
        drawing = m >= _DRAW_W
        aux = w.aux
        closed = aux.value() if aux is not None else drawing
        if not on:
            if closed or drawing:
                if w.alarm == WELDED:
                    w.bad = 0
                    return
                w.bad += 1
                if w.bad >= _WINDOWS:
                    self._raise(w, WELDED, "off but %s" % ("drawing" if drawing else "closed"))
                    self.controller.set_uncontrollable(load, True)
                    w.bad = 0
            elif w.alarm == WELDED and aux is not None:
                # Only an auxiliary contact can prove it opened: a CT alone cannot tell a
                # released contact from a satisfied thermostat, so that alarm latches.
                w.bad -= 1
                if w.bad <= -_CLEAR_WINDOWS:
                    self._clear(w)
            else:
                w.bad = 0
            return
        if aux is not None and not closed:
            w.bad += 1
            if w.bad >= _WINDOWS and w.alarm is None:
                self._raise(w, NO_CLOSE, "on but its contact is open")
        else:
            w.bad = 0
            if w.alarm == NO_CLOSE:
                self._clear(w)
        if 0 <= m < _DRAW_W:
            w.idle += 1
            if w.idle >= _NO_DRAW_WINDOWS:
                w.no_draw = True
        else:
            w.idle = 0
            w.no_draw = False

    def _check_charger(self, w):
        charger = w.charger
        load = w.load
        ok = charger.confirmed(self._clock.ticks_ms())
        if ok and load.measured_w < 0 and charger.actual_ma >= 0:
            load.measured_w = charger.actual_ma * load.volts // 1000   # its own report
        if not ok and w.alarm != LOST:
            self._raise(w, LOST, "no report")
            self.controller.set_uncontrollable(load, True)
        elif ok and w.alarm == LOST:
            self._clear(w)

    def _raise(self, w, alarm, why):
        w.alarm = alarm
        self._log("alarm: %s %s: %s" % (w.load.name, alarm, why))

    def _clear(self, w):
        self._log("alarm: %s %s cleared" % (w.load.name, w.alarm))
        w.alarm = None
        w.bad = 0
        # A load may be under two watches (its contactor and its sensor, loadsensor.py):
        # it is under control again only when neither holds an alarm.
        for other in self.watches:
            if other.load is w.load and other.alarm is not None:
                return
        self.controller.set_uncontrollable(w.load, False)

    def clear(self, name):
        """The installer's word that a welded contactor was replaced (console)."""
        for w in self.watches:
            if w.load.name == name and w.alarm is not None:
                self._clear(w)
                return True
        return False
