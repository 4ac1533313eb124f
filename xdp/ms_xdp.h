/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * ms_xdp.h - the maps shared by the XDP programs (ms_xdp.bpf.c) and their
 * loader (multistack/xdp.py through multistack/xdp_native).
 *
 * Plain C with fixed-width fields and no padding, so the same text is
 * compiled for BPF and declared to cffi.  One loaded object serves one
 * interface (the NIC); each port is one veth pair whose host end carries
 * ms_xdp_tx and is the port's identity (its ifindex).
 *
 *   ms_iface_cfg   array[1]          the NIC: ifindex, MAC
 *   ms_claims      hash   key->claim registered tuples (exact or wildcard)
 *   ms_local_addrs hash   addr->1    addresses configured on the NIC
 *                                    (a wildcard claim owns only these)
 *   ms_ports       hash   ifindex->port_cfg  one entry per port veth
 *   ms_port_devs   devmap_hash ifindex->ifindex  redirect targets of RX
 *   ms_iface_stats percpu array[MS_STAT_MAX] of u64: the NIC's counters
 *   ms_port_stats  percpu hash ifindex->counters: each port's counters
 *   ms_scratch     percpu array[1]   the classifier's copy of the frame
 *
 * Counters are indexed by MS_STAT_* (kmod/include/uapi/multistack.h).
 */
#ifndef MS_XDP_H
#define MS_XDP_H

#include <linux/types.h>

#define MS_XDP_MAX_CLAIMS	65536
#define MS_XDP_MAX_PORTS	1024
#define MS_XDP_MAX_ADDRS	256

/* the same layout as the module's struct ms_key: zero address = wildcard */
struct ms_xdp_key {
	__u8 addr[16];	/* network order; IPv4 in [0..3] */
	__u8 family;		/* MS_FAMILY_INET / MS_FAMILY_INET6 */
	__u8 proto;		/* MS_PROTO_TCP / MS_PROTO_UDP */
	__u16 port;		/* host order */
};

/* ms_claims value: the owning port and the proof socket */
struct ms_xdp_claim {
	__u32 port_ifindex;	/* host end of the port's veth */
	__u32 flags;		/* 0 */
	__u64 sock_cookie;	/* SO_COOKIE of the proof (not yet checked) */
};

/* ms_local_addrs key */
struct ms_xdp_addr {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];		/* 0 */
};

struct ms_xdp_iface_cfg {
	__u32 ifindex;	/* the NIC: TX redirects here */
	__u8 mac[6];		/* TX source MAC; RX "to this host" */
	__u8 pad[2];		/* 0 */
};

struct ms_xdp_port_cfg {
	__u32 max_rx_len;	/* longer frames: rx_drop_size */
	__u32 max_tx_len;	/* min(MTU + 14, frame size): tx_rej_oversize */
};

#define MS_XDP_STATS_LEN	32	/* MS_STAT_MAX */

struct ms_xdp_stats {
	__u64 c[MS_XDP_STATS_LEN];
};

#endif /* MS_XDP_H */
