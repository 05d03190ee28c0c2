"""Synthetic CT-like pelvic phantom with organs-at-risk, GTV, CTV and simulated readers."""
from radconf.datasets.phantom.anatomy import LABELS, STRUCTURES
from radconf.datasets.phantom.generator import PhantomCase, PhantomConfig, generate_case
from radconf.datasets.phantom.readers import ReaderModel

__all__ = ["LABELS", "STRUCTURES", "PhantomCase", "PhantomConfig", "ReaderModel", "generate_case"]
