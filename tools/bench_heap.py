"""Benchmark: the heap the firmware needs with every feature on, bisected on the 32-bit
unix port (the ESP32's object sizes) by tools/heapfit.py: MQTT, grid signals (a schedule,
a reservation, an emergency), the EV charger driven over MQTT, and commands, over a
simulated hour and a bit (long enough for all of it to run, short enough for a benchmark).

firmware_heap_kb_all_features: as make deploy installs the firmware on the board's own
MicroPython (boards/PANELCAP_ESP32/): its code in the romfs partition, run in place from
flash. firmware_heap_kb_all_features_mpy: on a stock MicroPython without that partition,
where make deploy copies .mpy files that load into the heap.
run() -> [(name, value)]."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heapfit  # noqa: E402
import toolchain  # noqa: E402


def run():
    rom_kb, _ = heapfit.bisect(heapfit.Scenario("all", 1.2, rom=True), 32, 160,
                               log=lambda m: None)
    mpy_kb, _ = heapfit.bisect(heapfit.Scenario("all", 1.2), 64, 192, log=lambda m: None)
    return [("firmware_heap_kb_all_features", rom_kb),
            ("firmware_heap_kb_all_features_mpy", mpy_kb),
            ("firmware_heap_word_bits", toolchain.WORD_BITS)]


if __name__ == "__main__":
    for name, value in run():
        print("%s: %s" % (name, value))
