"""The firmware's version, printed at boot and reported in status and telemetry."""
VERSION = "0.1.0"
