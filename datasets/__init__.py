"""Dataset generators and converters (installed as ``radconf.datasets``)."""
