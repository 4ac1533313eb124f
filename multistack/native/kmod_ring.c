/* Ring helpers of the kernel backend (multistack/kernel.py).
 *
 * The shared memory of a port is laid out as kmod/include/uapi/multistack.h
 * describes (netmap layout), and used through the accessors of
 * multistack_user.h (release store of head, acquire load of tail).  Every
 * index read from shared memory is checked against the size of the area
 * before it is used: a corrupt ring never makes this code read or write
 * outside the mapping.
 */
#include "kmod.h"

#include <string.h>
#include <multistack_user.h>

_Static_assert(sizeof(struct ms_netmap_slot) == 16, "slot size");
_Static_assert(offsetof(struct ms_netmap_slot, buf_idx) == 0, "slot.buf_idx");
_Static_assert(offsetof(struct ms_netmap_slot, len) == 4, "slot.len");
_Static_assert(offsetof(struct ms_netmap_slot, flags) == 6, "slot.flags");
_Static_assert(offsetof(struct ms_netmap_slot, ptr) == 8, "slot.ptr");
_Static_assert(sizeof(struct ms_netmap_ring) == MS_RING_SLOTS_OFS, "ring size");
_Static_assert(offsetof(struct ms_netmap_ring, buf_ofs) == 0, "ring.buf_ofs");
_Static_assert(offsetof(struct ms_netmap_ring, num_slots) == 8, "ring.num_slots");
_Static_assert(offsetof(struct ms_netmap_ring, nr_buf_size) == 12, "ring.nr_buf_size");
_Static_assert(offsetof(struct ms_netmap_ring, head) == 20, "ring.head");
_Static_assert(offsetof(struct ms_netmap_ring, cur) == 24, "ring.cur");
_Static_assert(offsetof(struct ms_netmap_ring, tail) == 28, "ring.tail");
_Static_assert(offsetof(struct ms_netmap_if, ring_ofs) == 48, "if.ring_ofs");
_Static_assert(sizeof(struct ms_netmap_if) == 128, "if size");
_Static_assert(sizeof(struct ms_if_req) == 48, "ms_if_req size");
_Static_assert(sizeof(struct ms_port_req) == 80, "ms_port_req size");
_Static_assert(sizeof(struct ms_reg_req) == 48, "ms_reg_req size");
_Static_assert(sizeof(struct ms_stats) == 544, "ms_stats size");

int ms_kmod_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static inline struct ms_netmap_ring *ring_at(char *mem, int64_t ring_ofs)
{
	return (struct ms_netmap_ring *)(mem + ring_ofs);
}

/* Offset from mem of buffer idx of ring r, or -1 when [off, off + need)
 * does not lie inside the area. */
static int64_t buf_offset(char *mem, uint64_t mem_size, int64_t ring_ofs,
			  const struct ms_netmap_ring *r, uint32_t idx,
			  uint32_t need)
{
	uint32_t bsz = r->nr_buf_size;
	int64_t off;

	if (need > bsz)
		return -1;
	off = ring_ofs + r->buf_ofs + (int64_t)idx * bsz;
	if (off < 0 || (uint64_t)off + bsz > mem_size)
		return -1;
	(void)mem;
	return off;
}

uint32_t ms_kmod_rx_collect(char *mem, uint64_t mem_size, int64_t ring_ofs,
			    uint32_t max, uint64_t *offs, uint32_t *lens)
{
	struct ms_netmap_ring *r = ring_at(mem, ring_ofs);
	uint32_t n = r->num_slots;
	uint32_t head = r->head;
	uint32_t tail = ms_ring_tail(r);
	uint32_t count = 0;

	if (n == 0 || head >= n || tail >= n)
		return 0;
	while (head != tail && count < max) {
		struct ms_netmap_slot *s = ms_ring_slot(r, head);
		uint32_t len = s->len;
		int64_t off = buf_offset(mem, mem_size, ring_ofs, r, s->buf_idx,
					 len);

		if (off < 0) {
			offs[count] = 0;
			lens[count] = 0;
		} else {
			offs[count] = (uint64_t)off;
			lens[count] = len;
		}
		count++;
		head = head + 1 == n ? 0 : head + 1;	/* within the n checked */
	}
	return count;
}

void ms_kmod_ring_set_head(char *mem, int64_t ring_ofs, uint32_t head)
{
	ms_ring_advance(ring_at(mem, ring_ofs), head);
}

uint32_t ms_kmod_ring_avail(char *mem, int64_t ring_ofs)
{
	struct ms_netmap_ring *r = ring_at(mem, ring_ofs);
	uint32_t n = r->num_slots;
	uint32_t head = r->head;
	uint32_t tail = ms_ring_tail(r);

	if (n == 0 || head >= n || tail >= n)
		return 0;
	return ms_ring_count(n, head, tail);
}

int ms_kmod_tx_put(char *mem, uint64_t mem_size, int64_t ring_ofs,
		   const char *frame, uint32_t len)
{
	struct ms_netmap_ring *r = ring_at(mem, ring_ofs);
	uint32_t head = r->head;
	struct ms_netmap_slot *s;
	int64_t off;

	if (ms_kmod_ring_avail(mem, ring_ofs) == 0)
		return 0;
	if (len > r->nr_buf_size || len > 0xffff)
		return -1;
	s = ms_ring_slot(r, head);
	off = buf_offset(mem, mem_size, ring_ofs, r, s->buf_idx, len);
	if (off < 0)
		return -2;
	memcpy(mem + off, frame, len);
	s->len = (uint16_t)len;
	s->flags = 0;
	ms_ring_advance(r, ms_ring_next(r, head));
	return 1;
}

int ms_kmod_tx_put_raw(char *mem, int64_t ring_ofs, uint32_t buf_idx,
		       uint32_t len)
{
	struct ms_netmap_ring *r = ring_at(mem, ring_ofs);
	uint32_t head = r->head;
	struct ms_netmap_slot *s;

	if (ms_kmod_ring_avail(mem, ring_ofs) == 0)
		return 0;
	s = ms_ring_slot(r, head);
	s->buf_idx = buf_idx;
	s->len = (uint16_t)len;
	s->flags = 0;
	ms_ring_advance(r, ms_ring_next(r, head));
	return 1;
}
