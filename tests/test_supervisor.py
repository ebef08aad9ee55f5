"""Supervisor and watchdog under virtual time on the unix port."""
from conftest import run_mpy

SETUP = """
import asyncio
from panelsim.vtime import VirtualTime
from panelsim import machine
from clock import WrappingClock
import supervisor as sv
import simboard as board
vt = VirtualTime(); vt.install()
clock = WrappingClock(vt.now_ms)
machine.attach(None, vt, board, None)
log = []
safe = []
raised = []
class Worker:
    def __init__(self, mode): self.mode = mode; self.heartbeat_ms = None; self.passes = 0
    async def run(self):
        while True:
            self.passes += 1
            if self.mode == 'raise' or (self.mode == 'raise_once' and self.passes == 3
                                        and not raised):
                raised.append(1)
                raise ValueError('boom')
            if self.mode == 'hang' and self.passes == 5:
                await asyncio.sleep(10_000)   # stuck: no heartbeat
            self.heartbeat_ms = clock.ticks_ms()
            await asyncio.sleep_ms(100)
def run(modes, seconds):
    global workers
    workers = {}
    def make(name, mode):
        def f():
            w = Worker(mode); workers.setdefault(name, []).append(w); return w
        return f
    entries = [sv.Supervised(n, make(n, m), 1000, critical=not n.startswith('net'))
               for n, m in modes]
    wdt = machine.WDT(timeout=3000)
    s = sv.Supervisor(clock, entries, lambda: safe.append(vt.elapsed_ms()), wdt, log=log.append)
    async def main():
        asyncio.create_task(s.run())
        await asyncio.sleep(seconds)
    t0 = vt.elapsed_ms()
    try:
        asyncio.run(main())
        print('ran', (vt.elapsed_ms() - t0) // 1000, 'no reset')
    except machine.WatchdogReset:
        print('reset at', vt.elapsed_ms() - t0)
    print('safe', safe)
    print('instances', {k: len(v) for k, v in workers.items()})
    print('feeds', s.feeds)
    return s
"""


def lines(code):
    return run_mpy(SETUP + code).stdout.strip().split("\n")


def test_healthy_tasks_feed_the_watchdog():
    out = lines("run([('sampler', 'ok'), ('control', 'ok')], 60)")
    assert out[0] == "ran 60 no reset"
    assert out[1] == "safe []"
    assert int(out[3].split()[1]) >= 100


def test_a_task_that_raises_is_restarted_from_its_factory():
    out = lines("run([('sampler', 'ok'), ('control', 'raise_once')], 30)\nprint(log)")
    assert out[0] == "ran 30 no reset"
    assert out[1] == "safe []"
    assert "'control': 2" in out[2]          # a new object, not the finished coroutine
    assert "crashed (ValueError: boom)" in out[4] and "restarting control" in out[4]


def test_a_hung_task_stops_the_feed_and_the_watchdog_resets_the_board():
    out = lines("run([('sampler', 'ok'), ('control', 'hang')], 60)")
    # Hangs at ~0.4 s; heartbeat stale after 1 s; watchdog bites 3 s after the last feed.
    ms = int(out[0].split()[-1])
    assert out[0].startswith("reset at") and 3000 < ms <= 5000, out


def test_a_task_that_keeps_raising_ends_in_safe_outputs_and_a_reset():
    out = lines("run([('sampler', 'ok'), ('control', 'raise')], 120)")
    assert out[0].startswith("reset at"), out
    assert out[1] != "safe []"               # outputs forced safe before the reset
    assert int(out[1].strip("safe []").split(",")[0]) < int(out[0].split()[-1])


def test_a_network_task_that_keeps_raising_is_restarted_with_backoff_never_forcing_safe():
    # Non-critical (network) crashes must not count toward the give-up: the control path is
    # healthy, so no safe outputs and no reset, however often the network task fails.
    out = lines("""s = run([('sampler', 'ok'), ('control', 'ok'), ('net', 'raise')], 300)
starts = [l for l in log if 'restarting net' in l]
print(len(starts), s.failed, [e.crashes for e in s.entries])""")
    assert out[0] == "ran 300 no reset"
    assert out[1] == "safe []"
    restarts, failed, crashes = out[4].split(" ", 2)
    assert failed == "False" and crashes.startswith("[0, 0, ")
    # Backoff 1, 2, 4 ... 32 s, capped: about 300 / 32 + 6 restarts, far fewer than 300.
    assert 8 <= int(restarts) <= 16, out


def test_give_up_cancels_every_task_so_nothing_drives_outputs_before_the_reset():
    out = lines("""run([('sampler', 'ok'), ('control', 'raise')], 120)
print(workers['sampler'][-1].passes)
""")
    assert out[0].startswith("reset at"), out
    # The sampler was cancelled at the give-up (about 3 s in: 1 + 2 s of backoff), not left
    # running until the reset: its passes stop there (10 per second).
    assert int(out[4]) <= 40, out


def test_a_task_added_while_running_is_started_and_supervised():
    # As the grid's task is, built by the first grid message: Supervisor.add, then started on
    # the next pass, and restarted from its factory if it crashes.
    out = lines("""
late = []
def make_late():
    w = Worker('raise_once'); late.append(w); return w
async def add_later():
    await asyncio.sleep(5)
    S[0].add(sv.Supervised('net_grid', make_late, 1000, critical=False))
_run = run
S = []
_Sup = sv.Supervisor
class Rec(_Sup):
    def __init__(self, *a, **k):
        _Sup.__init__(self, *a, **k); S.append(self)
        asyncio.create_task(add_later())
sv.Supervisor = Rec
run([('sampler', 'ok'), ('control', 'ok')], 30)
print('late', len(late), sum(w.passes for w in late), [e.name for e in S[0].entries])
""")
    assert out[0] == "ran 30 no reset" and out[1] == "safe []", out
    late = out[-1].split()
    assert late[0] == "late" and late[1] == "2", out      # started, crashed, made again
    assert int(late[2]) > 100 and "'net_grid'" in out[-1], out
