"""The high-level engine: images + flags -> OCI bundles, and container lifecycles.

The CLI calls these functions; they drive ``minibox.runtime`` through
``config.json`` and never print, except where a verb streams output.
"""
