#ifndef MULTISTACK_NATIVE_KMOD_H
#define MULTISTACK_NATIVE_KMOD_H

/* The kernel module's ABI (kmod/include/uapi/multistack.h) and the ring
 * helpers of the kernel backend (multistack/kernel.py). */

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <multistack.h>

/* Name of counter MS_STAT_* i (as in /proc/net/multistack), or NULL for an
 * unused index. */
const char *ms_stat_name(unsigned int i);
/* Its one-line description (the header's doc string), or NULL. */
const char *ms_stat_doc(unsigned int i);

/* ioctl(fd, req, arg): 0, or -errno. */
int ms_kmod_ioctl(int fd, unsigned long req, void *arg);

/* RX: describe the frames in slots [head, tail) of the ring at mem +
 * ring_ofs, at most max of them: offs[i] is the frame's offset from mem and
 * lens[i] its length.  A slot whose buffer index or length would reach
 * outside the mem_size bytes of the area is reported with length 0.
 * Returns the number of frames described. */
uint32_t ms_kmod_rx_collect(char *mem, uint64_t mem_size, int64_t ring_ofs,
			    uint32_t max, uint64_t *offs, uint32_t *lens);

/* Set head and cur of a ring (release store: the kernel reads them in the
 * next sync). */
void ms_kmod_ring_set_head(char *mem, int64_t ring_ofs, uint32_t head);

/* Slots user space owns in a ring: (tail - head) mod num_slots. */
uint32_t ms_kmod_ring_avail(char *mem, int64_t ring_ofs);

/* TX: copy a frame into the buffer of slot[head] and advance head.
 * Returns 1 when queued, 0 when the ring has no free slot, -1 when len is
 * larger than the buffer size, -2 when the slot's buffer index is corrupt. */
int ms_kmod_tx_put(char *mem, uint64_t mem_size, int64_t ring_ofs,
		   const char *frame, uint32_t len);

/* TX, for tests: put a slot with an arbitrary len and buf_idx (no copy). */
int ms_kmod_tx_put_raw(char *mem, int64_t ring_ofs, uint32_t buf_idx,
		       uint32_t len);

#endif
