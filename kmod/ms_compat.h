/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ms_compat.h - what differs between the kernels multistack.ko builds for
 * (Debian bookworm's 6.1 and 6.12, generic, cloud and PREEMPT_RT).  Every
 * version test of the module lives here; the .c files include this header
 * after the kernel's own and use only the names it defines.
 */
#ifndef MS_COMPAT_H
#define MS_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>

/* put_unaligned & co. moved from asm/ to linux/ in 6.12 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

/* skb_gso_segment's declaration moved to net/gso.h in 6.4 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#include <net/gso.h>
#else
#include <linux/netdevice.h>
#endif

/*
 * A file that cannot seek: no_llseek is gone in 6.12, where a NULL llseek
 * means the same (ESPIPE).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define MS_NO_LLSEEK	NULL
#else
#define MS_NO_LLSEEK	no_llseek
#endif

#endif /* MS_COMPAT_H */
