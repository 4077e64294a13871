"""The low-level runtime: runs one OCI bundle (config.json + rootfs), like runc.

It knows nothing of images, the CLI or networks; the engine drives it.
"""
