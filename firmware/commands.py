"""Remote commands, what they leave behind: the remote limit and its expiry, the counters and
the per-load override gates. Parsing, checking and applying a command is cmdparse.py's,
imported when a message arrives and dropped by the reporter after, so its code is in RAM
only while commands are handled. Pure: no network here.

Topics (under the prefix): cmd/limit, cmd/load/<name>, cmd/status, cmd/grid/<sub> (grid
signals: handed to grid.py, imported only when one arrives). See docs/mqtt.md."""

# LoadGate, its modes and Refused live in loadgate.py: the gates run every control pass once
# the first command has made them (telemetry.LazyCommands); commands.X still works.
from loadgate import MODE_AUTO, MODE_MAX_A, MODE_OFF, LoadGate, Refused  # noqa: F401


class Commands:
    """Takes remote commands (handle) and holds what they set. limits: the shed.Limits;
    gates: {name: LoadGate}; setpoint_w: the installer's limit, above which no remote limit
    is accepted; request_status: called (no arguments) to publish state now; emit(dict):
    sends an event. cmdparse.py reads and sets the private fields."""

    def __init__(self, limits, gates, clock, setpoint_w, emit, request_status=None,
                 min_limit_w=0, grid=None):
        self._limits = limits
        self._grid = grid            # called with no arguments: the grid.Grid (built on demand)
        self.gates = gates
        self._clock = clock
        self.setpoint_w = setpoint_w
        self.min_limit_w = min_limit_w
        self._emit = emit
        self._request_status = request_status
        self.remote_limit_w = None
        self._remote_until = None
        self.accepted = 0
        self.refused = 0

    def remote_limit(self, now):
        """(watts, seconds left) of the remote limit in force, or (None, 0)."""
        if self._remote_until is None:
            return None, 0
        left = self._clock.ticks_diff(self._remote_until, now)
        if left <= 0:
            self.remote_limit_w = None
            self._remote_until = None
            return None, 0
        return self.remote_limit_w, (left + 999) // 1000

    def handle(self, prefix, topic, payload):
        """One received message. Returns True if applied. Never raises on bad input.
        The parsing is cmdparse.py's, imported here; the reporter drops it after a batch."""
        import cmdparse
        return cmdparse.handle(self, prefix, topic, payload)
