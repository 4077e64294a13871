/* See caps.h. The v3 header describes two 32-bit words per set; the kernel
 * takes them as an array of two {effective, permitted, inheritable} structs. */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"

int mb_capget(uint32_t sets[6])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) == -1)
        return -1;
    for (int i = 0; i < 2; i++) {
        sets[0 + i] = data[i].effective;
        sets[2 + i] = data[i].permitted;
        sets[4 + i] = data[i].inheritable;
    }
    return 0;
}

int mb_capset(const uint32_t sets[6])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = sets[0 + i];
        data[i].permitted = sets[2 + i];
        data[i].inheritable = sets[4 + i];
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

int mb_prctl(int option, unsigned long a2, unsigned long a3,
             unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}
