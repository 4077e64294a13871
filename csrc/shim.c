/* See shim.h. Raw syscalls are used where glibc would add policy (setgroups,
 * setresuid: glibc broadcasts them to every thread, which is what we want in a
 * single-threaded child but would hide errors if it ever were not). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

int mb_unshare(int flags) { return unshare(flags); }

int mb_setns(int fd, int nstype) { return setns(fd, nstype); }

int mb_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

int mb_umount2(const char *target, int flags) { return umount2(target, flags); }

/* glibc has no wrapper for pivot_root(2). */
int mb_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int mb_sethostname(const char *name, size_t len) { return sethostname(name, len); }

int mb_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

int mb_setgroups(size_t size, const unsigned int *gids)
{
    return setgroups(size, (const gid_t *)gids);
}

int mb_setresuid(unsigned int r, unsigned int e, unsigned int s) { return setresuid(r, e, s); }

int mb_setresgid(unsigned int r, unsigned int e, unsigned int s) { return setresgid(r, e, s); }

/* Make fd (a pty slave) the controlling terminal of this session. */
int mb_ioctl_tiocsctty(int fd) { return ioctl(fd, TIOCSCTTY, 0); }

int mb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

static int ioctl_inet(unsigned long request, void *arg)
{
    /* An unbound AF_INET datagram socket is freed at once on close; a
     * netlink socket is freed after an RCU grace period and holds its netns
     * until then, which delays the netns's teardown by 10-20 ms. */
    int fd, rc, saved;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    rc = ioctl(fd, request, arg);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int mb_if_set_inet(const char *ifname, unsigned long request, uint32_t addr_be)
{
    struct ifreq ifr;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = addr_be;
    return ioctl_inet(request, &ifr);
}

int mb_route_add_default(uint32_t gateway_be)
{
    struct rtentry rt;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;

    memset(&rt, 0, sizeof(rt));
    ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
    ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
    gw->sin_family = AF_INET;
    gw->sin_addr.s_addr = gateway_be;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    return ioctl_inet(SIOCADDRT, &rt);
}

int mb_link_up(const char *ifname)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl_inet(SIOCGIFFLAGS, &ifr) < 0)
        return -1;
    if (ifr.ifr_flags & IFF_UP)
        return 0;
    ifr.ifr_flags |= IFF_UP;
    return ioctl_inet(SIOCSIFFLAGS, &ifr);
}
