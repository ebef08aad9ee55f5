"""The calibration console `cal`: each channel's gain set from a clamp meter's or a
multimeter's reading on the same wire, applied at once and kept by cfg.save()."""

import consoleapp
from consoleapp import Mistake, guard
from consolecfg import cfg


class Cal:
    """Calibration against a reference: clamp a meter on the same wire as the CT, read it,
    and give the reading. The new gain applies at once; cfg.save() keeps it."""

    _WINDOWS = 5

    def _average(self, index):
        # Five fresh windows; `index` is a CT channel, or None for the voltage.
        total = 0
        for _ in range(self._WINDOWS):
            meter = consoleapp.measure(1).meter
            total += meter.vrms_mv if index is None else meter.irms_ma[index]
        return total // self._WINDOWS

    @guard
    def current(self, channel, amps):
        """cal.current('CT3', 18.4): the clamp meter reads 18.4 A on CT3's wire."""
        index = consoleapp.channel(channel)
        app = cfg.sync()
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

    @guard
    def voltage(self, volts):
        """cal.voltage(121.5): a multimeter reads 121.5 V line to neutral."""
        app = cfg.sync()
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

    @guard
    def show(self):
        app = cfg.sync()
        s = consoleapp.measure(1)
        for i, ch in enumerate(app.board.CHANNELS):
            c = app.meter.calibration(i)
            reading = ("%.1f V" % (s.meter.vrms_mv / 1000)) if ch["kind"] == "v" else (
                "%.2f A" % (s.meter.irms_ma[i] / 1000))
            print("%-4s gain %.4f phase %+.1f deg  reads %s" % (
                ch["name"], c["gain"], c["phase_deg"], reading))


cal = Cal()
