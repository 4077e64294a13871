/* minibox C shim: one thin wrapper per syscall that Python's os module lacks.
 *
 * No policy and no Python here: every function returns -1 and leaves errno
 * set on failure, exactly like the syscall it wraps. minibox/syscalls.py turns
 * that errno into a SyscallError that names the operation and the path.
 */
#ifndef MINIBOX_SHIM_H
#define MINIBOX_SHIM_H

#include <stddef.h>
#include <stdint.h>

int mb_unshare(int flags);
int mb_setns(int fd, int nstype);
int mb_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data);
int mb_umount2(const char *target, int flags);
int mb_pivot_root(const char *new_root, const char *put_old);
int mb_sethostname(const char *name, size_t len);
int mb_setdomainname(const char *name, size_t len);
int mb_setgroups(size_t size, const unsigned int *gids);
int mb_setresuid(unsigned int r, unsigned int e, unsigned int s);
int mb_setresgid(unsigned int r, unsigned int e, unsigned int s);
int mb_ioctl_tiocsctty(int fd);
int mb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);

/* Bring a network interface up (SIOCSIFFLAGS); used for the new netns's lo. */
int mb_link_up(const char *ifname);
/* SIOCSIFADDR or SIOCSIFNETMASK of an IPv4 address (network byte order). */
int mb_if_set_inet(const char *ifname, unsigned long request, uint32_t addr_be);
/* SIOCADDRT: a default route via gateway (network byte order). */
int mb_route_add_default(uint32_t gateway_be);

#endif
