"""Build an image from a Dockerfile."""


def configure(parser) -> None:
    parser.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                        help="name and optionally a tag for the image (repeatable)")
    parser.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="set a build-time variable declared with ARG")
    parser.add_argument("--no-cache", action="store_true", help="do not use the cache when building")
    parser.add_argument("--target", metavar="STAGE", help="build this stage and stop")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id on success")
    parser.add_argument("--progress", choices=("auto", "plain", "tty", "quiet"), default="auto",
                        help="progress output (minibox always prints plain)")
    parser.add_argument("--trace", action="store_true", help="print each Linux primitive a RUN step applies")
    parser.add_argument("context", metavar="CONTEXT", help="the build context directory")


def _build_args(items: list[str]) -> dict[str, str]:
    import os

    from minibox.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid argument \"{item}\" for \"--build-arg\" flag")
        if not sep:
            # docker: --build-arg NAME takes the value from the environment, or is skipped.
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def main(args) -> int:
    import os
    import sys

    from minibox.build.builder import Builder, BuildOptions
    from minibox.build.progress import Progress
    from minibox.errors import UsageError

    if args.context == "-" or "://" in args.context:
        raise UsageError("minibox build takes a local directory as its context")
    if not os.path.isdir(args.context):
        raise UsageError(f"unable to prepare context: path \"{args.context}\" not found")
    opts = BuildOptions(
        context=os.path.abspath(args.context),
        dockerfile=args.file if args.file in (None, "-") else os.path.abspath(args.file),
        tags=list(args.tag),
        build_args=_build_args(args.build_arg),
        target=args.target,
        no_cache=args.no_cache,
    )
    if args.trace:
        from minibox.commands.run import trace_printer

        opts.trace = trace_printer(True)
    quiet = args.quiet or args.progress == "quiet"
    image = Builder(args.root, opts, Progress(sys.stderr, quiet=quiet)).run()
    if args.quiet:
        print(image.id)
    return 0
