"""Report the kernel features minibox uses, and what each missing one disables."""

import json


def configure(parser):
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def main(args) -> int:
    from minibox import kernelcheck

    items = kernelcheck.check()
    if args.format == "json":
        print(json.dumps([vars(i) for i in items], indent=2))
    else:
        print(kernelcheck.render(items))
    missing = [i for i in items if i.required and i.status == kernelcheck.MISSING]
    return 1 if missing else 0
