// SPDX-License-Identifier: GPL-2.0
/*
 * ms_xdp.bpf.c - MultiStack without the kernel module: the XDP programs of
 * the per-port veth design.
 *
 *   NIC --XDP ms_xdp_rx--> claimed frame --devmap--> port veth (host end)
 *                                                     |  peer: the port's
 *                                                     |  namespace (XSK)
 *   NIC <--bpf_redirect-- ms_xdp_tx (host end's XDP) <--
 *
 * ms_xdp_rx, on the NIC: classifies every frame with the module's own
 * classifier (kmod/include/multistack_classify.h), looks its destination
 * tuple up in ms_claims (exact, else the wildcard of its protocol and port
 * while the address is on the NIC; exact wins, as in ms_table_owner) and
 * redirects a claimed frame to the owning port's veth; an ICMP error about
 * a claimed source tuple goes to that port too.  Everything else is
 * XDP_PASS, counted as the module counts it (ms_rx.c).
 *
 * ms_xdp_tx, on the host end of each port's veth (what the port sends
 * arrives there): the module's TX checks in the module's order (ms_tx.c):
 * runt, oversize, fragment, malformed, bad MAC, not owned, other port.  The
 * port is the ingress ifindex: a port cannot name another.  Good frames are
 * redirected to the NIC; bad ones are XDP_DROP, counted by reason.
 *
 * The classifier reads a frame through a pointer and checks its offsets
 * against `avail`, which the verifier cannot relate to packet bounds.  So
 * each program copies the frame's first MS_CLS_HDR_MAX bytes into a
 * per-CPU scratch buffer (bpf_xdp_load_bytes, which also reads multi-buffer
 * frames) and classifies that; only when the headers go on past it
 * (MS_CLS_HDR_BEYOND) is the whole frame copied and classified again, so
 * the verdict is ms_classify()'s on the whole frame, as the module's on a
 * linear skb.  The buffer is longer than any offset the classifier can
 * compute (each is bounded by its byte-sized inputs: at most 8 IPv6
 * extension headers of at most 2048 bytes), which is what the verifier
 * checks; the classifier itself never reads past `avail`.
 *
 * Context: XDP (NAPI softirq, or the veth peer's), per-CPU: the scratch
 * buffer and counters need no lock.  Maps are filled by the loader.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "multistack_classify.h"
#include "uapi/multistack.h"
#include "ms_xdp.h"

_Static_assert(MS_XDP_STATS_LEN == MS_STAT_MAX, "one counter array layout");

/* longer than any offset the classifier computes (see the top comment) */
#define MS_XDP_SCRATCH_LEN	(MS_MAX_BUF_SIZE + 512)
/* the most of a frame that is copied: the module's largest buffer */
#define MS_XDP_COPY_MAX		MS_MAX_BUF_SIZE

struct ms_xdp_scratch {
	__u8 buf[MS_XDP_SCRATCH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_xdp_iface_cfg);
} ms_iface_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MS_XDP_MAX_CLAIMS);
	__type(key, struct ms_xdp_key);
	__type(value, struct ms_xdp_claim);
} ms_claims SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MS_XDP_MAX_ADDRS);
	__type(key, struct ms_xdp_addr);
	__type(value, __u8);
} ms_local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MS_XDP_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ms_xdp_port_cfg);
} ms_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, MS_XDP_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} ms_port_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ms_iface_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MS_XDP_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ms_xdp_stats);
} ms_port_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_xdp_scratch);
} ms_scratch SEC(".maps");

static __always_inline void ms_iface_add(__u32 stat, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&ms_iface_stats, &stat);

	if (c)
		*c += n;
}

/* the interface's counter, and the port's when there is one */
static __always_inline void ms_count(__u32 port, __u32 stat, __u64 n)
{
	struct ms_xdp_stats *ps;

	ms_iface_add(stat, n);
	if (!port)
		return;
	ps = bpf_map_lookup_elem(&ms_port_stats, &port);
	if (ps && stat < MS_STAT_MAX)
		ps->c[stat] += n;
}

/*
 * Copies the frame (first MS_CLS_HDR_MAX bytes, or up to `want`) into the
 * scratch buffer; returns the bytes copied, or -1.
 */
static __always_inline int ms_copy(struct xdp_md *ctx, __u8 *buf,
				   __u32 len, __u32 want)
{
	__u64 n = len < want ? len : want;

	/* bound the register the helper gets, not a copy clang may pick */
	asm volatile("" : "+r"(n));
	if (n > MS_XDP_COPY_MAX)
		return -1;
	if (n == 0)
		return 0;
	if (bpf_xdp_load_bytes(ctx, 0, buf, n))
		return -1;
	return n;
}

/*
 * ms_classify() of the whole frame (see the top comment), or -1 if it
 * could not be copied; *avail: the bytes now in buf.
 */
static __always_inline int ms_classify_frame(struct xdp_md *ctx, __u8 *buf,
					     __u32 len, int *avail,
					     struct ms_cls_result *cls)
{
	int v;

	*avail = ms_copy(ctx, buf, len, MS_CLS_HDR_MAX);
	if (*avail < 0)
		return -1;
	v = ms_classify_partial(buf, *avail, len, 0, cls);
	if (v != MS_CLS_HDR_BEYOND)
		return v;
	*avail = ms_copy(ctx, buf, len, MS_XDP_COPY_MAX);
	if (*avail < 0)
		return -1;
	return ms_classify_partial(buf, *avail, len, 0, cls);
}

static __always_inline void ms_key_fill(struct ms_xdp_key *key, __u8 family,
					__u8 proto, const __u8 *addr,
					__u16 port)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->addr, addr, sizeof(key->addr));
	key->family = family;
	key->proto = proto;
	key->port = port;
}

static __always_inline int ms_addr_is_zero(const __u8 *a)
{
	const __u64 *w = (const __u64 *)a;

	return (w[0] | w[1]) == 0;
}

/*
 * The claim owning key's tuple: the exact one, else the wildcard of its
 * protocol and port while key's address is on the NIC (ms_table_owner).
 * The module also checks, on every lookup, that the proof socket still
 * holds the tuple; that check is not here yet (docs/architecture.md, "XDP
 * backend": where it goes and why bpf_get_socket_cookie cannot do it).
 */
static __always_inline const struct ms_xdp_claim *
ms_owner(struct ms_xdp_key *key)
{
	struct ms_xdp_claim *claim;
	struct ms_xdp_addr local = {};

	claim = bpf_map_lookup_elem(&ms_claims, key);
	if (claim) {
		if (ms_addr_is_zero(key->addr))	/* no frame is to or from it */
			return 0;
		return claim;
	}
	__builtin_memcpy(local.addr, key->addr, sizeof(local.addr));
	local.family = key->family;
	__builtin_memset(key->addr, 0, sizeof(key->addr));
	claim = bpf_map_lookup_elem(&ms_claims, key);
	if (!claim || !bpf_map_lookup_elem(&ms_local_addrs, &local))
		return 0;
	return claim;
}

static __always_inline int ms_mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/* passed to the OS: rx_passed, and the reason's counter */
static __always_inline int ms_rx_pass(__u32 stat)
{
	ms_iface_add(MS_STAT_RX_PASSED, 1);
	if (stat != MS_STAT_RX_PASSED)
		ms_iface_add(stat, 1);
	return XDP_PASS;
}

SEC("xdp")
int ms_xdp_rx(struct xdp_md *ctx)
{
	__u32 zero = 0, len = bpf_xdp_get_buff_len(ctx);
	const struct ms_xdp_iface_cfg *cfg;
	const struct ms_xdp_port_cfg *pcfg;
	const struct ms_xdp_claim *claim;
	struct ms_cls_icmp_result icmp;
	struct ms_cls_result cls;
	struct ms_xdp_scratch *s;
	struct ms_xdp_key key;
	__u32 port;
	int v, avail, is_icmp = 0;
	long act;

	cfg = bpf_map_lookup_elem(&ms_iface_cfg, &zero);
	s = bpf_map_lookup_elem(&ms_scratch, &zero);
	if (!cfg || !s)
		return XDP_PASS;
	v = ms_classify_frame(ctx, s->buf, len, &avail, &cls);
	if (v < 0)
		return ms_rx_pass(MS_STAT_RX_MALFORMED);
	if (v == MS_CLS_VLAN)
		return ms_rx_pass(MS_STAT_RX_VLAN);
	/* not to this host (PACKET_OTHERHOST): unicast to another MAC */
	if (len >= ETH_HLEN && !(s->buf[0] & 1) && !ms_mac_eq(s->buf, cfg->mac))
		return ms_rx_pass(MS_STAT_RX_PASSED);
	if (v == MS_CLS_NOT_TCPUDP &&
	    cls.proto == (cls.family == MS_FAMILY_INET ? IPPROTO_ICMP :
							 IPPROTO_ICMPV6)) {
		/* the quote may lie past the first copy: classify the whole
		 * frame, as the module does a linear skb */
		if (avail < (int)len)
			avail = ms_copy(ctx, s->buf, len, MS_XDP_COPY_MAX);
		if (avail < 0)
			return ms_rx_pass(MS_STAT_RX_MALFORMED);
		v = ms_classify_icmp_partial(s->buf, avail, len, 0, &icmp);
		if (v != MS_CLS_OK)
			return ms_rx_pass(MS_CLS_IS_MALFORMED(v) ?
					  MS_STAT_RX_MALFORMED : MS_STAT_RX_NOT_IP);
		is_icmp = 1;
		ms_key_fill(&key, icmp.family, icmp.proto, icmp.src_addr,
			    icmp.src_port);
	} else if (v != MS_CLS_OK) {
		if (MS_CLS_IS_MALFORMED(v))
			return ms_rx_pass(MS_STAT_RX_MALFORMED);
		if (v == MS_CLS_FRAGMENT)
			return ms_rx_pass(MS_STAT_RX_FRAGMENT);
		return ms_rx_pass(MS_STAT_RX_NOT_IP);
	} else {
		ms_key_fill(&key, cls.family, cls.proto, cls.dst_addr,
			    cls.dst_port);
	}
	claim = ms_owner(&key);
	if (!claim)	/* an ICMP error about a tuple of the OS: not_ip */
		return ms_rx_pass(is_icmp ? MS_STAT_RX_NOT_IP : MS_STAT_RX_PASSED);
	port = claim->port_ifindex;
	pcfg = bpf_map_lookup_elem(&ms_ports, &port);
	if (!pcfg)		/* the port is being torn down */
		return ms_rx_pass(MS_STAT_RX_PASSED);
	if (len > pcfg->max_rx_len) {
		ms_count(port, MS_STAT_RX_DROP_SIZE, 1);
		return XDP_DROP;
	}
	act = bpf_redirect_map(&ms_port_devs, port, XDP_PASS);
	if (act != XDP_REDIRECT)
		return ms_rx_pass(MS_STAT_RX_PASSED);
	ms_count(port, MS_STAT_RX_DELIVERED, 1);
	ms_count(port, MS_STAT_RX_BYTES, len);
	if (is_icmp)
		ms_count(port, MS_STAT_RX_ICMP_DELIVERED, 1);
	return XDP_REDIRECT;
}

static __always_inline int ms_tx_reject(__u32 port, __u32 stat)
{
	ms_count(port, stat, 1);
	return XDP_DROP;
}

SEC("xdp")
int ms_xdp_tx(struct xdp_md *ctx)
{
	__u32 zero = 0, len = bpf_xdp_get_buff_len(ctx);
	__u32 port = ctx->ingress_ifindex;
	const struct ms_xdp_iface_cfg *cfg;
	const struct ms_xdp_port_cfg *pcfg;
	const struct ms_xdp_claim *claim;
	struct ms_cls_result cls;
	struct ms_xdp_scratch *s;
	struct ms_xdp_key key;
	int v, avail;

	cfg = bpf_map_lookup_elem(&ms_iface_cfg, &zero);
	s = bpf_map_lookup_elem(&ms_scratch, &zero);
	pcfg = bpf_map_lookup_elem(&ms_ports, &port);
	if (!cfg || !s)
		return XDP_DROP;
	if (!pcfg)		/* not a port's veth (or being torn down) */
		return ms_tx_reject(0, MS_STAT_TX_ERROR);
	if (len < MS_MIN_FRAME)
		return ms_tx_reject(port, MS_STAT_TX_REJ_RUNT);
	if (len > pcfg->max_tx_len || len > MS_XDP_COPY_MAX)
		return ms_tx_reject(port, MS_STAT_TX_REJ_OVERSIZE);
	v = ms_classify_frame(ctx, s->buf, len, &avail, &cls);
	if (v != MS_CLS_OK)
		return ms_tx_reject(port, v == MS_CLS_FRAGMENT ?
				    MS_STAT_TX_REJ_FRAGMENT :
				    MS_STAT_TX_REJ_MALFORMED);
	if (!ms_mac_eq(s->buf + ETH_ALEN, cfg->mac))
		return ms_tx_reject(port, MS_STAT_TX_REJ_BAD_MAC);
	ms_key_fill(&key, cls.family, cls.proto, cls.src_addr, cls.src_port);
	claim = ms_owner(&key);
	if (!claim)
		return ms_tx_reject(port, MS_STAT_TX_REJ_NOT_OWNED);
	if (claim->port_ifindex != port)
		return ms_tx_reject(port, MS_STAT_TX_REJ_OTHER_PORT);
	ms_count(port, MS_STAT_TX_SENT, 1);
	ms_count(port, MS_STAT_TX_BYTES, len);
	return bpf_redirect(cfg->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
