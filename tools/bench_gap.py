"""Benchmark: the scheduler's worst gap under the ESP32 cost model (tools/panelsim/vtime.py:
an ADC read 35 us, Python and viper 50 times the host's time), with MQTT running against a
local mosquitto, over a simulated hour; the first minute (build, first connect) apart. The
Python part scales this host's time, so the figure carries the host's noise: read it as the
worst of one run. run() -> [(name, value)]."""
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_sim  # noqa: E402
from mqttbroker import Broker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run():
    with tempfile.TemporaryDirectory(prefix="benchgap") as workdir, Broker(workdir) as broker:
        cmd, env = run_sim.firmware_command(
            ["--hours", "1.05", "--mqtt", "127.0.0.1:%d" % broker.port, "--speed", "600",
             "--esp32-costs"], log=lambda m: None)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=600)
    line = [l for l in proc.stderr.splitlines() if l.startswith("sim: worst scheduler hold")]
    if proc.returncode != 0 or not line or "mqtt: connected" not in proc.stderr:
        raise SystemExit("bench_gap: the run failed: %s" % proc.stderr[-1000:])
    words = line[0].split()
    return [("scheduler_worst_gap_ms_esp32_model", int(words[4])),
            ("scheduler_gap_p999_ms_esp32_model", int(words[13])),
            ("scheduler_worst_gap_ms_esp32_model_first_minute", int(words[7]))]


if __name__ == "__main__":
    for name, value in run():
        print("%s: %s" % (name, value))
