/* minibox capability shim: capget/capset (v3, 64-bit sets) and prctl.
 *
 * glibc has no capset(2) wrapper and prctl(2) is variadic, which cffi cannot
 * call portably; these are the thinnest possible fixed-signature faces.
 * No policy: each returns -1 and leaves errno, like the syscall it wraps.
 */
#ifndef MINIBOX_CAPS_H
#define MINIBOX_CAPS_H

#include <stdint.h>

/* sets[0..1] effective, [2..3] permitted, [4..5] inheritable: low/high 32 bits. */
int mb_capget(uint32_t sets[6]);
int mb_capset(const uint32_t sets[6]);
int mb_prctl(int option, unsigned long a2, unsigned long a3,
             unsigned long a4, unsigned long a5);

#endif
