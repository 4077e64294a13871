"""minibox: a small container runtime built straight from Linux primitives.

Layers (see README): cli -> engine (images, containers, networks) -> OCI
bundle (config.json) -> runtime (namespaces, mounts, cgroups, exec) -> C shim.
Modules import lazily: start-up time is measured.
"""

__version__ = "0.1.0"
