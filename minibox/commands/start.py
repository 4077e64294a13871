"""Start one or more stopped containers."""


def configure(p) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    from minibox.engine import containers, records
    from minibox.errors import MiniboxError

    failed = 0
    for ref in args.containers:
        try:
            rec = records.load(args.root, records.resolve(args.root, ref))
            if rec["state"]["status"] in ("running", "paused"):
                print(ref)
                continue
            if rec["state"].get("needs_cleanup"):
                containers.release_runtime(args.root, rec)
            if args.attach or args.interactive:
                from minibox.engine import foreground

                return foreground.run(args.root, rec, interactive=args.interactive,
                                      tty=rec["config"]["Tty"])
            from minibox.engine import detached

            detached.start_detached(args.root, rec)
            print(ref)
        except MiniboxError as exc:
            import sys

            print(f"minibox: {exc}", file=sys.stderr)
            failed = exc.exit_code
    return 1 if failed and len(args.containers) > 1 else failed
