"""Contents of a container's /etc/hosts and /etc/resolv.conf (pure; the engine writes them).

resolv.conf is the host's, but a loopback nameserver (systemd-resolved's
127.0.0.53, a local dnsmasq) means nothing inside another netns, so such
servers are replaced by public resolvers, as docker does. ``--dns`` replaces
the nameservers outright.
"""

import socket

from minibox.errors import UsageError

FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")


def _is_ipv4(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, text)
        return True
    except OSError:
        return False


def _is_ip(text: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            pass
    return False


def parse_add_host(values) -> list[tuple[str, list[str]]]:
    """``--add-host name:ip`` (or ``name=ip``) values → (ip, [name]); UsageError when malformed."""
    out = []
    for value in values or ():
        sep = "=" if "=" in value else ":"
        name, _, ip = value.partition(sep)
        ip = ip.strip("[]")
        if not name or not _is_ip(ip):
            raise UsageError(f"invalid argument {value!r} for --add-host: expected HOST:IP")
        out.append((ip, [name]))
    return out


def hosts(hostname: str, ip: str | None, peers=(), extra=()) -> str:
    """/etc/hosts: loopback, the container's own name on its address, peers, --add-host."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for addr, names in extra:
        lines.append(f"{addr}\t{' '.join(names)}")
    if ip:
        lines.append(f"{ip}\t{hostname}")
    text = "\n".join(lines) + "\n"
    if peers:
        from minibox.network.endpoint import render_peers

        text = render_peers(text, peers)
    return text


def resolv_conf(dns=(), host_text: str | None = None) -> str:
    """resolv.conf for a bridge container; ``host_text`` defaults to the host's file."""
    for server in dns or ():
        if not _is_ip(server):
            raise UsageError(f"invalid argument {server!r} for --dns: not an IP address")
    if host_text is None:
        try:
            with open("/etc/resolv.conf") as fh:
                host_text = fh.read()
        except OSError:
            host_text = ""
    kept, servers = [], []
    for line in host_text.splitlines():
        words = line.split()
        if words and words[0] == "nameserver" and len(words) > 1:
            addr = words[1]
            if not (addr.startswith("127.") or addr == "::1"):
                servers.append(addr)
        elif words and not line.lstrip().startswith(("#", ";")):
            kept.append(line.strip())
    if dns:
        servers = list(dns)
    elif not servers:
        servers = list(FALLBACK_DNS)
    return "".join(f"nameserver {s}\n" for s in servers) + "".join(f"{k}\n" for k in kept)
