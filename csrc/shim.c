/* See shim.h. Raw syscalls are used where glibc would add policy (setgroups,
 * setresuid: glibc broadcasts them to every thread, which is what we want in a
 * single-threaded child but would hide errors if it ever were not). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <net/if.h>
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

int mb_link_up(const char *ifname)
{
    struct ifreq ifr;
    int fd, rc, saved;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
