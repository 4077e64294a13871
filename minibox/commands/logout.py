"""Log out from a registry."""


def configure(parser) -> None:
    parser.add_argument("server", nargs="?", default="docker.io")


def main(args) -> int:
    from minibox.commands.login import server_host
    from minibox.image import registry

    host = server_host(args.server)
    if registry.load_credentials(args.root, host) is None:
        print(f"Not logged in to {host}")
        return 0
    registry.save_credentials(args.root, host, None, None)
    print(f"Removing login credentials for {host}")
    return 0
