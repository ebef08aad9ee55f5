"""Prints the heap the simulator itself takes (its modules, the profile, the panel model
and its ADC tables, the image of the board's frozen modules): memory a real board does not
spend. The simulation gives the firmware its ESP32-sized heap on top of this, so the
firmware's budget is what the test says."""

import gc

import asyncio          # the firmware's too: loaded before the baseline
import esp32_dinrail    # the real board's data is the firmware's, not the simulator's


def measure():
    gc.collect()
    before = gc.mem_alloc()
    # frozen holds the image of the board's frozen modules (umqtt): its flash, on this port
    from panelsim import frozen, run, profile, panel, adcgen, vtime
    import simboard as board
    prof = profile.load(run.DEFAULT_PROFILE)
    model = panel.Panel(board.PANEL, prof)
    gen = adcgen.AdcGen(board, model)
    vt = vtime.VirtualTime()
    gc.collect()
    used = gc.mem_alloc() - before
    return used


print(measure())
