"""The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as docker writes them.

They live in the container's state dir and are bind-mounted over the
image's files, so the image layers are never modified.
"""

import os

from minibox.atomic import write_bytes

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")  # docker's fallback when the host only has loopback resolvers


def hosts_text(hostname: str, ip: str | None, extra: list[tuple[str, str]] = ()) -> str:
    lines = [HOSTS_HEADER]
    for addr, names in extra:
        lines.append(f"{addr}\t{names}\n")
    if ip:
        lines.append(f"{ip}\t{hostname}\n")
    return "".join(lines)


def resolv_text(host_resolv: str, dns: list[str] = (), keep_loopback: bool = False) -> str:
    """The host's resolv.conf with loopback nameservers dropped (unreachable from a netns)."""
    out = []
    servers = []
    for line in host_resolv.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if keep_loopback or not _is_loopback(words[1]):
                servers.append(words[1])
            continue
        out.append(line)
    if dns:
        servers = list(dns)
    if not servers:
        servers = list(DEFAULT_DNS)
    body = [line for line in out if line.strip()]
    return "".join(f"{line}\n" for line in body) + "".join(f"nameserver {s}\n" for s in servers)


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def write_all(cdir: str, hostname: str, ip: str | None = None, *, dns=(), extra_hosts=(),
              host_network: bool = False) -> None:
    """Write the three files into the container's state dir."""
    write_bytes(os.path.join(cdir, "hostname"), f"{hostname}\n".encode(), 0o644, durable=False)
    if host_network:
        hosts = _read("/etc/hosts") or hosts_text(hostname, None)
    else:
        hosts = hosts_text(hostname, ip, list(extra_hosts))
    write_bytes(os.path.join(cdir, "hosts"), hosts.encode(), 0o644, durable=False)
    resolv = resolv_text(_read("/etc/resolv.conf"), list(dns), keep_loopback=host_network)
    write_bytes(os.path.join(cdir, "resolv.conf"), resolv.encode(), 0o644, durable=False)


def rewrite_in_place(path: str, render) -> None:
    """Replace the text of the bind-mounted ``path`` with ``render(old_text)``, in place.

    A bind mount pins the inode: a container sees a file rewritten in place,
    never one renamed over it. So this is the one write here that cannot be
    atomic; an exclusive flock keeps two minibox writers apart. It is used
    for /etc/hosts once the init may have mounted it: the address, leased
    while the init sets itself up, and later the peers of a user network.
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        new = render(fh.read())
        fh.seek(0)
        fh.write(new)
        fh.truncate()


def update_hosts(cdir: str, hostname: str, ip: str | None, extra_hosts=()) -> None:
    """Rewrite the container's /etc/hosts in place (see rewrite_in_place) with its address."""
    text = hosts_text(hostname, ip, list(extra_hosts))
    rewrite_in_place(os.path.join(cdir, "hosts"), lambda _old: text)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
