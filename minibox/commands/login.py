"""Log in to a registry (credentials are kept in <root>/image/auth.json, mode 0600)."""

import sys

from minibox.errors import UsageError


def configure(parser) -> None:
    parser.add_argument("-u", "--username", default=None)
    parser.add_argument("-p", "--password", default=None)
    parser.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    parser.add_argument("--insecure-registry", action="store_true", help="allow plain HTTP off loopback")
    parser.add_argument("server", nargs="?", default="docker.io")


def server_host(server: str) -> str:
    """``https://index.docker.io/v1/`` or ``host:5000`` → the key credentials are stored under."""
    from minibox.image.reference import DEFAULT_DOMAIN, LEGACY_DOMAINS

    host = server.split("://", 1)[-1].split("/", 1)[0]
    return DEFAULT_DOMAIN if host in LEGACY_DOMAINS else host


def main(args) -> int:
    from minibox.image import registry

    host = server_host(args.server)
    user, password = args.username, args.password
    if args.password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    if user is None and sys.stdin.isatty():
        user = input("Username: ")
    if password is None and sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    if not user or password is None:
        raise UsageError("login: username and password are required (-u USER --password-stdin)")
    client = registry.Client(host, insecure=args.insecure_registry, credentials=(user, password))
    client.ping()
    registry.save_credentials(args.root, host, user, password)
    print("Login Succeeded")
    return 0
