"""Curtailing a source (a PV inverter's output) to hold the export limit where soaking into
deferrable loads cannot: the second option of issue 16 item 2 (docs/shed.md, "Curtailing a
source"). Pure ints, no I/O. The source is any object with

    rated_w       its AC rating, W
    output_w      what it delivers now, W (its own report); -1: not known
    cap_w         the cap last commanded, W (rated_w: none)
    shown_w       the cap its own state shows it follows, W; -1: none (its safe state)
    set_cap(w)    commands a new cap (its driver sends it)
    response_ms   how long it takes to follow a new cap

export.Soaker steps it after its own step, so the deferrable loads soak first and the source
gives up only what is left; what the cap holds back counts as surplus for the next soak start
(held_w), so a tank that has room takes the energy before it is thrown away."""

from micropython import const

from shed import AGE_CAP_MS

_BAND_PCT = const(2)     # the export is held between the limit less this much of the rating
_MIN_BAND_W = const(100)  # and the limit: inside it, the cap is left alone


class Curtail:
    def __init__(self, source, clock):
        self.source = source
        self.band_w = max(_MIN_BAND_W, source.rated_w * _BAND_PCT // 100)
        self._changed_ms = clock.ticks_add(clock.ticks_ms(), -source.response_ms)
        self.changes = 0

    def held_w(self):
        """What the cap keeps the source from delivering now: the cap's shortfall below the
        rating while the source delivers all the cap allows (else the sun limits it)."""
        src = self.source
        if src.cap_w >= src.rated_w:
            return 0
        if src.output_w < 0 or src.output_w + self.band_w >= src.cap_w:
            return src.rated_w - src.cap_w
        return 0

    def release(self, now):
        """No cap: the import side is shedding or failing safe, and every watt the source
        delivers is a watt less drawn through the panel."""
        if self.source.cap_w < self.source.rated_w:
            self._set(self.source.rated_w, now)

    def step(self, now, p_w, lim_w, ctl):
        """p_w: the projected net power (negative: export); lim_w: the export limit in force."""
        src = self.source
        rated_w = src.rated_w
        if lim_w is None:
            self.release(now)
            return
        excess_w = -p_w - lim_w
        clock = ctl.clock
        if clock.ticks_diff(now, self._changed_ms) > AGE_CAP_MS:
            # Days without a change: ticks_diff would wrap (the tick's half period is 6.2
            # days) and read the last change as in the future, holding the cap for days.
            self._changed_ms = clock.ticks_add(now, -AGE_CAP_MS)
        # One change per response time: a cap the source has not followed yet is not
        # lowered again on the same excess (that would ratchet it to 0).
        if clock.ticks_diff(now, self._changed_ms) < src.response_ms:
            return
        if excess_w > 0:
            # Lowered from what it reports it delivers. With no fresh report, from the export:
            # it delivers at least that (the house takes the rest), so the cap holds the
            # limit at once, too low by the house's draw until it is raised again. Not from
            # its cap: one it has not followed yet would be cut again, down to 0.
            out_w = src.output_w
            if out_w < 0:
                out_w = -p_w
            if out_w > rated_w:
                out_w = rated_w
            want_w = out_w - excess_w - self.band_w // 2
            # What it takes comes back as import: never past the restore threshold (it
            # cannot while the site exports more than lim_w >= 0; kept as the rule).
            room_w = ctl._restore_w - p_w
            if out_w - want_w > room_w:
                want_w = out_w - room_w
            if want_w < 0:
                want_w = 0
            if want_w < src.cap_w:
                self._set(want_w, now)
        elif src.cap_w < rated_w and excess_w < -self.band_w and self._holds_back(src):
            want_w = src.cap_w - excess_w - self.band_w // 2     # up by the gap under the limit
            self._set(want_w if want_w < rated_w else rated_w, now)

    def _holds_back(self, src):
        """The cap is what holds the source back, so raising it gives more: it delivers all
        the cap allows or, with no reading, its state shows it follows the cap. Else the
        sun holds it back, or it has not followed the last raise yet: raised again, the
        cap would overshoot once it does."""
        if src.output_w >= 0:
            return src.output_w + self.band_w >= src.cap_w
        return src.shown_w == src.cap_w

    def _set(self, w, now):
        self.source.set_cap(w)
        self._changed_ms = now
        self.changes += 1
