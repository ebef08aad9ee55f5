"""For scripts that drive the firmware's tasks under asyncio on the unix port (the MQTT link's
tests): wait for a condition without blocking the tasks that make it true."""
import asyncio
import time


async def until(cond, ms):
    """cond() once true, polled every 10 ms for at most ms of real time; its last value."""
    t0 = time.ticks_ms()
    while not cond() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(10)
    return cond()
