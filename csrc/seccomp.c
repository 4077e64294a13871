/* See mb_seccomp.h. seccomp(2) rather than prctl(PR_SET_SECCOMP) so no flags are
 * implied; the caller has set no_new_privs or holds CAP_SYS_ADMIN. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mb_seccomp.h"

int mb_seccomp_set_filter(const void *insns, unsigned short count)
{
    struct sock_fprog prog = {count, (struct sock_filter *)insns};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
