"""The simulated panel behind the simulated board: physics (panel), ADC path (adcgen),
load profiles (profile), the machine layer the firmware sees (machine) and virtual time
(vtime). Runs under the MicroPython unix port beside the firmware."""
