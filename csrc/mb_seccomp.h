/* minibox seccomp shim: install an already compiled classic-BPF filter.
 *
 * libseccomp compiles a profile into BPF (slow: ~18 ms for docker's default
 * on three architectures); minibox caches that program and installs it with
 * this one call. No policy: returns -1 and leaves errno like seccomp(2).
 */
#ifndef MINIBOX_SECCOMP_H
#define MINIBOX_SECCOMP_H

/* insns: count 8-byte struct sock_filter instructions. */
int mb_seccomp_set_filter(const void *insns, unsigned short count);

#endif
