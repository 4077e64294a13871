"""The networking flags of ``run``/``create``; the lead's parser owns ``--network``."""


def add_arguments(parser) -> None:
    """Add -p/--publish, -P/--publish-all, --ip, --add-host and --dns to ``parser``."""
    parser.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOSTPORT:PORT[/PROTO]",
                        help="publish a container's port to the host")
    parser.add_argument("-P", "--publish-all", action="store_true",
                        help="publish every exposed port to a random host port")
    parser.add_argument("--ip", default=None, metavar="IPV4", help="IPv4 address (user networks only)")
    parser.add_argument("--add-host", action="append", default=[], metavar="HOST:IP",
                        help="add a custom host-to-IP mapping to /etc/hosts")
    parser.add_argument("--dns", action="append", default=[], metavar="IP", help="set a custom DNS server")
