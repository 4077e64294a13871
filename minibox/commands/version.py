"""Show the minibox version information."""


def configure(p) -> None:
    pass


def main(args) -> int:
    import platform

    from minibox import __version__

    print(f"minibox version {__version__}")
    print(f" Python:       {platform.python_version()}")
    print(f" Kernel:       {platform.release()}")
    print(" OCI spec:     1.0.2")
    return 0
