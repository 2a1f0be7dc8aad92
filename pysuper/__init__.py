"""pysuper: a PID-1 init and process supervisor for container images."""

__version__ = "0.1.0"
