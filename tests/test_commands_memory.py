"""A command that runs out of memory is answered, not lost: the first grid message builds the
grid (imports and objects), and on a board short of heap that raises MemoryError. Before,
the reporter logged it and the grid heard nothing (issue 19, "Memory")."""
from conftest import run_mpy

CODE = r"""
import json
import commands
from limits import Limits
from fakeclock import FakeClock
from snippet import check, fails

clock = FakeClock()
limits = Limits(setpoint_w=9600, volts=120, rating_a=100, clock=clock)
events = []
built = []

def grid_that_does_not_fit():
    # What a board short of heap does on the first grid message: the build allocates.
    built.append(1)
    hog = []
    while True:
        hog.append(bytearray(4096))

cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=grid_that_does_not_fit)
applied = cmds.handle('pc', 'pc/cmd/grid/emergency', '{"id": "e1", "share_pct": 50}')
check(built == [1], 'the grid was asked for')
check(applied is False, 'not applied')
check(len(events) == 1, 'one answer: %r' % events)
ev = events[0] if events else {}
check(ev.get('cmd') == 'grid/emergency' and ev.get('id') == 'e1' and ev.get('ok') is False,
      'answered with its id: %r' % ev)
check(ev.get('error', '').startswith('out of memory ('), 'says why: %r' % ev)
check(cmds.refused == 1 and cmds.accepted == 0, 'counted as refused')
check(limits.effective_w(clock.ticks_ms()) == 9600, 'the limit unchanged')
# The heap is usable again: the next command goes through.
check(cmds.handle('pc', 'pc/cmd/limit', '{"limit_w": 8000, "duration_s": 60}') is True, 'next one')
check(limits.effective_w(clock.ticks_ms()) == 8000, 'and applies')
print(json.dumps(ev))
print('fails', len(fails))
"""


def test_a_command_that_runs_out_of_memory_is_answered():
    out = run_mpy(CODE, heap="128k", extra_path=["tools", "tests"]).stdout
    assert "fails 0" in out, out
