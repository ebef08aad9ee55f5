"""What the docs promise against what the code does: names a user or a tool relies on."""
import re

from conftest import ROOT


def test_every_control_state_is_documented():
    states = {s for line in (ROOT / "firmware/shed.py").read_text().splitlines()
              if "self.state = " in line for s in re.findall(r'"(\w+)"', line)}
    row = [l for l in (ROOT / "docs/mqtt.md").read_text().splitlines()
           if l.startswith("| `control` |")]
    assert row and len(states) >= 9, (row, states)
    missing = [s for s in sorted(states) if "`%s`" % s not in row[0]]
    assert not missing, missing


def test_make_installs_the_mqtt_clients_the_docs_use():
    assert "mosquitto_sub" in (ROOT / "docs/mqtt.md").read_text()
    assert "mosquitto_sub:mosquitto-clients" in (ROOT / "Makefile").read_text()
