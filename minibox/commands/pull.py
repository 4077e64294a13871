"""Download an image from a registry."""


def configure(parser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    parser.add_argument("--platform", default=None, help="os/arch[/variant] to pull (default: the host's)")
    parser.add_argument("--insecure-registry", action="store_true",
                        help="allow plain HTTP to a registry that is not on loopback")
    parser.add_argument("--concurrency", type=int, default=3, help=argparse_suppress())
    parser.add_argument("name", metavar="NAME[:TAG|@DIGEST]")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def main(args) -> int:
    from minibox.image.pull import pull
    from minibox.image.store import ImageStore

    pull(ImageStore(args.root), args.name, platform=args.platform, insecure=args.insecure_registry,
         quiet=args.quiet, concurrency=args.concurrency)
    return 0
