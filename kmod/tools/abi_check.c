// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * abi_check - compile-time check, in user space, of the layout that
 * multistack.ko asserts in ms_main.c (the same numbers the cffi tests check
 * with ffi.offsetof).  Built with -std=c11 by tests/fuzz/run_classifier_fuzz;
 * it compiling at all is the test, running it prints the sizes.
 */
#include <stddef.h>
#include <stdio.h>

#include "../include/uapi/multistack.h"
#include "../include/multistack_classify.h"

#define AT(t, f, o) _Static_assert(offsetof(t, f) == (o), #t "." #f)
#define SZ(t, n) _Static_assert(sizeof(t) == (n), "sizeof " #t)

SZ(struct ms_netmap_slot, 16);
AT(struct ms_netmap_slot, buf_idx, 0);
AT(struct ms_netmap_slot, len, 4);
AT(struct ms_netmap_slot, flags, 6);
AT(struct ms_netmap_slot, ptr, 8);
SZ(struct ms_netmap_ring, MS_RING_SLOTS_OFS);
AT(struct ms_netmap_ring, buf_ofs, 0);
AT(struct ms_netmap_ring, num_slots, 8);
AT(struct ms_netmap_ring, nr_buf_size, 12);
AT(struct ms_netmap_ring, ringid, 16);
AT(struct ms_netmap_ring, dir, 18);
AT(struct ms_netmap_ring, head, 20);
AT(struct ms_netmap_ring, cur, 24);
AT(struct ms_netmap_ring, tail, 28);
AT(struct ms_netmap_ring, flags, 32);
AT(struct ms_netmap_ring, ts_sec, 40);
AT(struct ms_netmap_ring, ts_usec, 48);
SZ(struct ms_netmap_if, 128);
AT(struct ms_netmap_if, ni_name, 0);
AT(struct ms_netmap_if, ni_version, 16);
AT(struct ms_netmap_if, ni_tx_rings, 24);
AT(struct ms_netmap_if, ni_rx_rings, 28);
AT(struct ms_netmap_if, ni_mem_size, 44);
AT(struct ms_netmap_if, ring_ofs, 48);
AT(struct ms_netmap_if, ni_nbufs, 64);
AT(struct ms_netmap_if, ni_buf_size, 68);
SZ(struct ms_if_req, 48);
SZ(struct ms_port_req, 80);
AT(struct ms_port_req, tx_slots, 24);
AT(struct ms_port_req, mem_size, 36);
AT(struct ms_port_req, port_id, 44);
SZ(struct ms_reg_req, 48);
AT(struct ms_reg_req, family, 8);
AT(struct ms_reg_req, proto, 9);
AT(struct ms_reg_req, port, 10);
AT(struct ms_reg_req, sockfd, 12);
AT(struct ms_reg_req, addr, 16);
SZ(struct ms_stats, 32 + 2 * 8 * MS_STAT_MAX);
AT(struct ms_stats, port, 32);
SZ(struct ms_cls_result, 60);
AT(struct ms_cls_result, l3_off, 12);
AT(struct ms_cls_result, src_addr, 28);
AT(struct ms_cls_result, dst_addr, 44);
SZ(struct ms_cls_icmp_result, 64);
AT(struct ms_cls_icmp_result, src_port, 12);
AT(struct ms_cls_icmp_result, l3_off, 16);
AT(struct ms_cls_icmp_result, quote_off, 28);
AT(struct ms_cls_icmp_result, src_addr, 32);
AT(struct ms_cls_icmp_result, dst_addr, 48);

int main(void)
{
	printf("ABI %d: if_req %zu port_req %zu reg_req %zu stats %zu "
	       "ring %zu slot %zu netmap_if %zu cls_result %zu\n",
	       MS_ABI_VERSION, sizeof(struct ms_if_req),
	       sizeof(struct ms_port_req), sizeof(struct ms_reg_req),
	       sizeof(struct ms_stats), sizeof(struct ms_netmap_ring),
	       sizeof(struct ms_netmap_slot), sizeof(struct ms_netmap_if),
	       sizeof(struct ms_cls_result));
	return 0;
}
