/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * multistack_user.h - ring accessors for user space (C99, static inline).
 *
 * The one copy of what every program using a port's shared memory needs:
 * finding the rings and slots, a buffer's address, how many slots user
 * space owns, moving head and reading tail with the ordering multistack.h
 * ("Memory ordering") asks for, and the sync ioctls.  These trust the ring:
 * code that must survive a corrupt one checks indices itself.
 *
 * Typical RX loop, after MS_IOC_PORT_BIND and mem = mmap(...):
 *	struct ms_netmap_ring *rx = ms_rx_ring(ms_mem_if(mem));
 *	uint32_t i = rx->head, tail = ms_ring_tail(rx);
 *	for (; i != tail; i = ms_ring_next(rx, i)) {
 *		struct ms_netmap_slot *s = ms_ring_slot(rx, i);
 *		consume(ms_ring_buf(rx, s->buf_idx), s->len);
 *	}
 *	ms_ring_advance(rx, i);
 *	ms_rxsync(fd);		(or poll(POLLIN), which syncs too)
 */
#ifndef _MULTISTACK_USER_H
#define _MULTISTACK_USER_H

#ifdef __KERNEL__
#error "multistack_user.h is for user space"
#endif

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "multistack.h"

/* The interface header sits at offset 0 of the mapping. */
static inline struct ms_netmap_if *ms_mem_if(void *mem)
{
	return (struct ms_netmap_if *)mem;
}

/* which: MS_RING_TX or MS_RING_RX; ring_ofs[] is relative to nifp. */
static inline struct ms_netmap_ring *ms_ring(struct ms_netmap_if *nifp,
					     unsigned int which)
{
	return (struct ms_netmap_ring *)((char *)nifp + nifp->ring_ofs[which]);
}

static inline struct ms_netmap_ring *ms_tx_ring(struct ms_netmap_if *nifp)
{
	return ms_ring(nifp, MS_RING_TX);
}

static inline struct ms_netmap_ring *ms_rx_ring(struct ms_netmap_if *nifp)
{
	return ms_ring(nifp, MS_RING_RX);
}

static inline struct ms_netmap_slot *ms_ring_slot(struct ms_netmap_ring *r,
						  uint32_t i)
{
	return (struct ms_netmap_slot *)((char *)r + MS_RING_SLOTS_OFS) + i;
}

/* Buffer buf_idx of the pool the ring's slots point into. */
static inline uint8_t *ms_ring_buf(struct ms_netmap_ring *r, uint32_t buf_idx)
{
	return (uint8_t *)r + r->buf_ofs + (size_t)buf_idx * r->nr_buf_size;
}

static inline uint32_t ms_ring_next(const struct ms_netmap_ring *r, uint32_t i)
{
	return i + 1 == r->num_slots ? 0 : i + 1;
}

/* Slots from 'from' up to 'to' in a ring of n slots (indices < n). */
static inline uint32_t ms_ring_count(uint32_t n, uint32_t from, uint32_t to)
{
	return to >= from ? to - from : to + n - from;
}

/*
 * tail, loaded with acquire ordering: the slots and buffers the kernel
 * published before moving it are visible once it is read.
 */
static inline uint32_t ms_ring_tail(const struct ms_netmap_ring *r)
{
	return __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

/*
 * Slots user space owns, [head, tail): frames to read on RX, free slots to
 * fill on TX.
 */
static inline uint32_t ms_ring_space(const struct ms_netmap_ring *r)
{
	return ms_ring_count(r->num_slots, r->head, ms_ring_tail(r));
}

/*
 * Hand the slots before head back to the kernel (it acts on them at the
 * next sync).  head is stored with release ordering, after what was
 * written into those slots and buffers (TX) or read from them (RX); cur
 * simply follows head.
 */
static inline void ms_ring_advance(struct ms_netmap_ring *r, uint32_t head)
{
	r->cur = head;
	__atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
}

/* MS_IOC_TXSYNC: send [previous head, head), reclaim space.  0 or -errno. */
static inline int ms_txsync(int fd)
{
	return ioctl(fd, MS_IOC_TXSYNC) ? -errno : 0;
}

/* MS_IOC_RXSYNC: free the slots before head, publish received ones.
 * 0 or -errno. */
static inline int ms_rxsync(int fd)
{
	return ioctl(fd, MS_IOC_RXSYNC) ? -errno : 0;
}

#endif /* _MULTISTACK_USER_H */
