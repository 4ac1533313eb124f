/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * multistack_classify.h - kernel-independent Ethernet frame classifier.
 *
 * Shared, unchanged, by multistack.ko (RX demux and TX validation), the
 * Python cffi extension (multistack.classify) and the libFuzzer harness
 * (tests/fuzz).  Header
 * only: every function is `static inline`, uses no library call and reads
 * multi-byte fields byte by byte (no byte-order helpers, no unaligned
 * loads), so the same code compiles in the kernel, in user space and for
 * BPF (xdp/ms_xdp.bpf.c: only memcmp needs a stand-in there).
 *
 * Context: pure function, any context (softirq included); no locking, no
 * allocation, bounded work (at most MS_CLS_MAX_EXTHDRS IPv6 extension
 * headers are walked).
 *
 * API (simple C, declarable to cffi):
 *
 *   int ms_classify(const uint8_t *frame, uint32_t len, uint32_t flags,
 *                   struct ms_cls_result *out);
 *   int ms_classify_partial(const uint8_t *frame, uint32_t avail,
 *                           uint32_t frame_len, uint32_t flags,
 *                           struct ms_cls_result *out);
 *
 *   int ms_classify_icmp(const uint8_t *frame, uint32_t len, uint32_t flags,
 *                        struct ms_cls_icmp_result *out);
 *   int ms_classify_icmp_partial(const uint8_t *frame, uint32_t avail,
 *                                uint32_t frame_len, uint32_t flags,
 *                                struct ms_cls_icmp_result *out);
 *
 * `frame` starts at the destination MAC.  ms_classify_partial() is for
 * callers that have only the first `avail` bytes of a `frame_len`-byte
 * frame contiguous (the kernel copies at most MS_CLS_HDR_MAX bytes of
 * headers); headers that lie beyond `avail` but inside the frame give
 * MS_CLS_HDR_BEYOND (not malformed).  Both return the verdict, also stored
 * in out->verdict.  On MS_CLS_OK every field of *out is valid; on other
 * verdicts the fields parsed so far are valid and the rest are zero.
 *
 * Checks: Ethernet length; optional single 802.1Q/802.1ad tag (only with
 * MS_CLS_F_VLAN, otherwise MS_CLS_VLAN); IPv4 version, IHL >= 5, header
 * inside the frame, total length >= IHL*4 and inside the frame, header
 * checksum, fragments (MF or offset != 0); IPv6 version, payload length
 * != 0 (no jumbograms) and inside the frame, up to MS_CLS_MAX_EXTHDRS of
 * hop-by-hop / routing / destination options headers, fragment header; a
 * routing header of type 0 (deprecated by RFC 5095, which the OS refuses
 * to send) is MS_CLS_RH0, malformed: never delivered to a port (the OS
 * stack applies RFC 5095 to it) and refused on TX; routing headers of
 * every other type (2: Mobile IPv6, 3: RPL, 4: segment routing, ...) are
 * walked over like the other extension headers, in both directions;
 * TCP data offset >= 5 and header inside the L3 payload; UDP length >= 8
 * and <= the L3 payload.  Ethernet padding after the IP packet is allowed.
 * L4 checksums are not verified.  On MS_CLS_NOT_TCPUDP, proto is the IP
 * protocol (or the IPv6 next header that ended the walk) and l4_off /
 * l4_len locate that header and the rest of the IP payload.
 *
 * ms_classify_icmp[_partial]() recognise an ICMP error about a TCP/UDP
 * packet this host sent, so that it can go to the port owning the quoted
 * SOURCE tuple.  Contract (every check in this order; the first that fails
 * gives the verdict):
 *   1. the frame, classified as above, is MS_CLS_NOT_TCPUDP with protocol
 *      ICMP (1) over IPv4 or ICMPv6 (58) over IPv6 (after the walked
 *      extension headers); MS_CLS_OK (TCP/UDP) and any other protocol give
 *      MS_CLS_NOT_ICMP_ERR; every other verdict of ms_classify is returned
 *      unchanged (malformed outer headers, fragments, VLAN, ...);
 *   2. the ICMP message (IP payload) holds its 8-byte header, else
 *      MS_CLS_BAD_ICMP;
 *   3. its type is an error: ICMPv4 3 (destination unreachable, all codes,
 *      fragmentation needed included), 11 (time exceeded), 12 (parameter
 *      problem); ICMPv6 1 (destination unreachable), 2 (packet too big),
 *      3 (time exceeded), 4 (parameter problem); else MS_CLS_NOT_ICMP_ERR
 *      (echo, redirect, source quench, router and neighbour discovery,
 *      MLD, ...);
 *   4. the quoted packet after the ICMP header: IPv4 under ICMPv4 (version
 *      4, IHL >= 5, the IHL*4-byte header and 8 transport bytes inside the
 *      message, total length >= IHL*4 + 8) or IPv6 under ICMPv6 (version 6,
 *      40 + 8 bytes inside the message, payload length >= 8), else
 *      MS_CLS_BAD_QUOTE; its header checksum is not checked (routers and
 *      NATs may quote it altered);
 *   5. a quoted IPv4 packet with a fragment offset is MS_CLS_FRAGMENT (no
 *      transport header; a first fragment is fine); a quoted protocol /
 *      IPv6 next header other than TCP or UDP is MS_CLS_NOT_TCPUDP
 *      (quoted IPv6 extension headers, a fragment header included, are
 *      not followed);
 *   6. the quoted source address equals the outer destination address (an
 *      error about our packet comes back to the address it left from),
 *      else MS_CLS_ICMP_NOT_OURS.
 * The ICMP checksum is not verified (it is an L4 checksum: the port's stack
 * checks it), nor the quoted transport header beyond its ports.  Headers
 * beyond `avail` give MS_CLS_HDR_BEYOND as above.  On MS_CLS_OK every field
 * of struct ms_cls_icmp_result is valid: src_addr/src_port are the quoted
 * source (the tuple to look up, the host's own), dst_addr/dst_port the
 * quoted destination.  On other verdicts the fields found so far are set
 * and the rest are zero.  No frame is MS_CLS_OK for both ms_classify and
 * ms_classify_icmp.
 */
#ifndef MULTISTACK_CLASSIFY_H
#define MULTISTACK_CLASSIFY_H

#if defined(__KERNEL__)
#include <linux/types.h>
#include <linux/string.h>
typedef u8 ms_cls_u8;
typedef u16 ms_cls_u16;
typedef u32 ms_cls_u32;
#elif defined(__bpf__)
/* BPF programs (xdp/): no libc; clang inlines memcpy/memset of constant
 * size but emits a call for memcmp, which BPF does not have; and a BPF
 * call takes at most 5 arguments, so everything is inlined */
#include <linux/types.h>
#define inline inline __attribute__((always_inline))
typedef __u8 ms_cls_u8;
typedef __u16 ms_cls_u16;
typedef __u32 ms_cls_u32;
#define memcpy __builtin_memcpy
#define memset __builtin_memset
static inline int ms_cls_memcmp(const void *a, const void *b, ms_cls_u32 n)
{
	const ms_cls_u8 *x = (const ms_cls_u8 *)a, *y = (const ms_cls_u8 *)b;
	ms_cls_u32 i;

	for (i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] - y[i];
	return 0;
}
#define memcmp ms_cls_memcmp
#else
#include <stdint.h>
#include <string.h>
typedef uint8_t ms_cls_u8;
typedef uint16_t ms_cls_u16;
typedef uint32_t ms_cls_u32;
#endif

/* verdicts: 0 = classified; 1..15 = not for us, pass to the OS (benign);
 * 16.. = malformed (never delivered to a port, rejected on TX) */
#define MS_CLS_OK		0
#define MS_CLS_NOT_IP		1	/* ethertype not IPv4/IPv6 (ARP, ...) */
#define MS_CLS_VLAN		2	/* 802.1Q/802.1ad tag, F_VLAN not set */
#define MS_CLS_NOT_TCPUDP	3	/* ICMP, unknown IPv6 ext header, ... */
#define MS_CLS_FRAGMENT		4	/* IPv4 MF/offset, IPv6 fragment hdr */
#define MS_CLS_HDR_BEYOND	5	/* headers beyond `avail` bytes */
#define MS_CLS_NOT_ICMP_ERR	6	/* ms_classify_icmp: not an ICMP error */
#define MS_CLS_ICMP_NOT_OURS	7	/* quoted source != outer destination */
#define MS_CLS_MALFORMED_MIN	16
#define MS_CLS_TRUNC_ETH	16	/* shorter than an Ethernet header */
#define MS_CLS_TRUNC_L3		17	/* IP header cut short */
#define MS_CLS_BAD_VERSION	18	/* IP version != ethertype's */
#define MS_CLS_BAD_IHL		19	/* IPv4 IHL < 5 or past the frame */
#define MS_CLS_BAD_TOTLEN	20	/* IP total/payload length wrong */
#define MS_CLS_BAD_CSUM		21	/* IPv4 header checksum */
#define MS_CLS_TRUNC_L4		22	/* TCP/UDP header cut short */
#define MS_CLS_BAD_L4		23	/* TCP doff < 5 / past L3, UDP len */
#define MS_CLS_BAD_EXTHDR	24	/* IPv6 extension header past L3 */
#define MS_CLS_BAD_FLAGS	25	/* unknown flags argument */
#define MS_CLS_RH0		26	/* IPv6 routing header type 0 */
#define MS_CLS_LAST		MS_CLS_RH0	/* ms_classify's last verdict */
#define MS_CLS_BAD_ICMP		27	/* ICMP header cut short */
#define MS_CLS_BAD_QUOTE	28	/* quoted IP header of an ICMP error */

#define MS_CLS_IS_MALFORMED(v)	((v) >= MS_CLS_MALFORMED_MIN)

/* flags */
#define MS_CLS_F_VLAN		0x1	/* parse through one VLAN tag */

#define MS_CLS_HDR_MAX		256	/* bytes of headers the kernel copies */
#define MS_CLS_MAX_EXTHDRS	8

#define MS_CLS_ETH_P_IP		0x0800
#define MS_CLS_ETH_P_IPV6	0x86DD
#define MS_CLS_ETH_P_8021Q	0x8100
#define MS_CLS_ETH_P_8021AD	0x88A8

/* 60 bytes, no padding */
struct ms_cls_result {
	ms_cls_u32 verdict;	/* MS_CLS_* */
	ms_cls_u8 family;	/* 2 (IPv4) / 10 (IPv6) when known, else 0 */
	ms_cls_u8 proto;	/* 6 / 17 when known */
	ms_cls_u16 vlan_tci;	/* tag (with MS_CLS_F_VLAN), else 0 */
	ms_cls_u16 src_port;	/* host order */
	ms_cls_u16 dst_port;	/* host order */
	ms_cls_u32 l3_off;	/* offset of the IP header */
	ms_cls_u32 l4_off;	/* offset of the TCP/UDP header */
	ms_cls_u32 l3_len;	/* IP packet length (header + payload) */
	ms_cls_u32 l4_len;	/* L4 header + payload length */
	ms_cls_u8 src_addr[16];	/* network order; IPv4 in [0..3] */
	ms_cls_u8 dst_addr[16];
};

/* 64 bytes, no padding */
struct ms_cls_icmp_result {
	ms_cls_u32 verdict;	/* MS_CLS_* */
	ms_cls_u8 family;	/* 2 / 10: the error's and the quote's */
	ms_cls_u8 proto;	/* quoted protocol (6 / 17 on MS_CLS_OK) */
	ms_cls_u8 icmp_type;
	ms_cls_u8 icmp_code;
	ms_cls_u16 vlan_tci;	/* tag (with MS_CLS_F_VLAN), else 0 */
	ms_cls_u16 reserved;	/* 0 */
	ms_cls_u16 src_port;	/* quoted source port, host order */
	ms_cls_u16 dst_port;	/* quoted destination port */
	ms_cls_u32 l3_off;	/* offset of the outer IP header */
	ms_cls_u32 icmp_off;	/* offset of the ICMP header */
	ms_cls_u32 icmp_len;	/* ICMP message length (header + body) */
	ms_cls_u32 quote_off;	/* offset of the quoted IP header */
	ms_cls_u8 src_addr[16];	/* quoted source = outer destination */
	ms_cls_u8 dst_addr[16];	/* quoted destination */
};

static inline ms_cls_u32 ms_cls_rd16(const ms_cls_u8 *p)
{
	return ((ms_cls_u32)p[0] << 8) | p[1];
}

/* one's complement sum of an IPv4 header; 0 when the checksum holds */
static inline ms_cls_u32 ms_cls_ip4_csum(const ms_cls_u8 *p, ms_cls_u32 n)
{
	ms_cls_u32 sum = 0, i;

	for (i = 0; i + 1 < n; i += 2)
		sum += ms_cls_rd16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (~sum) & 0xffff;
}

static inline int ms_cls_done(struct ms_cls_result *out, int verdict)
{
	out->verdict = (ms_cls_u32)verdict;
	return verdict;
}

/* L4: `l4` is the offset of the TCP/UDP header, `l4_len` the bytes the IP
 * layer says it carries (both already checked against frame_len). */
static inline int ms_cls_l4(const ms_cls_u8 *f, ms_cls_u32 avail,
			    ms_cls_u32 l4, ms_cls_u32 l4_len, ms_cls_u8 proto,
			    struct ms_cls_result *out)
{
	ms_cls_u32 need = proto == 6 ? 20 : 8;

	out->proto = proto;
	out->l4_off = l4;
	out->l4_len = l4_len;
	if (l4_len < need)
		return ms_cls_done(out, MS_CLS_TRUNC_L4);
	if (l4 + need > avail)
		return ms_cls_done(out, MS_CLS_HDR_BEYOND);
	out->src_port = (ms_cls_u16)ms_cls_rd16(f + l4);
	out->dst_port = (ms_cls_u16)ms_cls_rd16(f + l4 + 2);
	if (proto == 6) {
		ms_cls_u32 doff = (ms_cls_u32)(f[l4 + 12] >> 4) * 4;

		if (doff < 20 || doff > l4_len)
			return ms_cls_done(out, MS_CLS_BAD_L4);
	} else {
		ms_cls_u32 ulen = ms_cls_rd16(f + l4 + 4);

		if (ulen < 8 || ulen > l4_len)
			return ms_cls_done(out, MS_CLS_BAD_L4);
	}
	return ms_cls_done(out, MS_CLS_OK);
}

static inline int ms_cls_ipv4(const ms_cls_u8 *f, ms_cls_u32 avail,
			      ms_cls_u32 frame_len, ms_cls_u32 l3,
			      struct ms_cls_result *out)
{
	ms_cls_u32 ihl, tot, frag;
	const ms_cls_u8 *ip = f + l3;

	out->family = 2;
	out->l3_off = l3;
	if (frame_len - l3 < 20)
		return ms_cls_done(out, MS_CLS_TRUNC_L3);
	if (l3 + 20 > avail)
		return ms_cls_done(out, MS_CLS_HDR_BEYOND);
	if ((ip[0] >> 4) != 4)
		return ms_cls_done(out, MS_CLS_BAD_VERSION);
	ihl = (ms_cls_u32)(ip[0] & 0xf) * 4;
	if (ihl < 20 || ihl > frame_len - l3)
		return ms_cls_done(out, MS_CLS_BAD_IHL);
	if (l3 + ihl > avail)
		return ms_cls_done(out, MS_CLS_HDR_BEYOND);
	tot = ms_cls_rd16(ip + 2);
	if (tot < ihl || tot > frame_len - l3)
		return ms_cls_done(out, MS_CLS_BAD_TOTLEN);
	out->l3_len = tot;
	if (ms_cls_ip4_csum(ip, ihl) != 0)
		return ms_cls_done(out, MS_CLS_BAD_CSUM);
	memcpy(out->src_addr, ip + 12, 4);
	memcpy(out->dst_addr, ip + 16, 4);
	out->proto = ip[9];
	frag = ms_cls_rd16(ip + 6);
	if (frag & 0x3fff)			/* MF or fragment offset */
		return ms_cls_done(out, MS_CLS_FRAGMENT);
	if (ip[9] != 6 && ip[9] != 17) {
		out->l4_off = l3 + ihl;
		out->l4_len = tot - ihl;
		return ms_cls_done(out, MS_CLS_NOT_TCPUDP);
	}
	return ms_cls_l4(f, avail, l3 + ihl, tot - ihl, ip[9], out);
}

static inline int ms_cls_ipv6(const ms_cls_u8 *f, ms_cls_u32 avail,
			      ms_cls_u32 frame_len, ms_cls_u32 l3,
			      struct ms_cls_result *out)
{
	const ms_cls_u8 *ip = f + l3;
	ms_cls_u32 plen, off, end, n;
	ms_cls_u8 nh;

	out->family = 10;
	out->l3_off = l3;
	if (frame_len - l3 < 40)
		return ms_cls_done(out, MS_CLS_TRUNC_L3);
	if (l3 + 40 > avail)
		return ms_cls_done(out, MS_CLS_HDR_BEYOND);
	if ((ip[0] >> 4) != 6)
		return ms_cls_done(out, MS_CLS_BAD_VERSION);
	plen = ms_cls_rd16(ip + 4);
	if (plen == 0 || plen > frame_len - l3 - 40)
		return ms_cls_done(out, MS_CLS_BAD_TOTLEN);
	out->l3_len = plen + 40;
	memcpy(out->src_addr, ip + 8, 16);
	memcpy(out->dst_addr, ip + 24, 16);
	nh = ip[6];
	off = l3 + 40;
	end = l3 + 40 + plen;
	for (n = 0; ; n++) {
		ms_cls_u32 hlen;

		if (nh == 6 || nh == 17)
			break;
		if (nh == 44) {
			out->proto = nh;
			return ms_cls_done(out, MS_CLS_FRAGMENT);
		}
		/* hop-by-hop, routing, destination options */
		if ((nh != 0 && nh != 43 && nh != 60) ||
		    n >= MS_CLS_MAX_EXTHDRS) {
			out->proto = nh;
			out->l4_off = off;
			out->l4_len = end - off;
			return ms_cls_done(out, MS_CLS_NOT_TCPUDP);
		}
		if (end - off < 8)
			return ms_cls_done(out, MS_CLS_BAD_EXTHDR);
		if (off + 8 > avail)
			return ms_cls_done(out, MS_CLS_HDR_BEYOND);
		hlen = ((ms_cls_u32)f[off + 1] + 1) * 8;
		if (hlen > end - off)
			return ms_cls_done(out, MS_CLS_BAD_EXTHDR);
		if (nh == 43 && f[off + 2] == 0)	/* routing type */
			return ms_cls_done(out, MS_CLS_RH0);
		nh = f[off];
		off += hlen;
	}
	return ms_cls_l4(f, avail, off, end - off, nh, out);
}

static inline int ms_classify_partial(const ms_cls_u8 *frame,
				      ms_cls_u32 avail, ms_cls_u32 frame_len,
				      ms_cls_u32 flags,
				      struct ms_cls_result *out)
{
	ms_cls_u32 etype, l3 = 14;

	memset(out, 0, sizeof(*out));
	if (flags & ~(ms_cls_u32)MS_CLS_F_VLAN)
		return ms_cls_done(out, MS_CLS_BAD_FLAGS);
	if (avail > frame_len)
		avail = frame_len;
	if (frame_len < 14)
		return ms_cls_done(out, MS_CLS_TRUNC_ETH);
	if (avail < 14)
		return ms_cls_done(out, MS_CLS_HDR_BEYOND);
	etype = ms_cls_rd16(frame + 12);
	if (etype == MS_CLS_ETH_P_8021Q || etype == MS_CLS_ETH_P_8021AD) {
		if (!(flags & MS_CLS_F_VLAN))
			return ms_cls_done(out, MS_CLS_VLAN);
		if (frame_len < 18)
			return ms_cls_done(out, MS_CLS_TRUNC_ETH);
		if (avail < 18)
			return ms_cls_done(out, MS_CLS_HDR_BEYOND);
		out->vlan_tci = (ms_cls_u16)ms_cls_rd16(frame + 14);
		etype = ms_cls_rd16(frame + 16);
		l3 = 18;
		if (etype == MS_CLS_ETH_P_8021Q || etype == MS_CLS_ETH_P_8021AD)
			return ms_cls_done(out, MS_CLS_VLAN);
	}
	if (etype == MS_CLS_ETH_P_IP)
		return ms_cls_ipv4(frame, avail, frame_len, l3, out);
	if (etype == MS_CLS_ETH_P_IPV6)
		return ms_cls_ipv6(frame, avail, frame_len, l3, out);
	return ms_cls_done(out, MS_CLS_NOT_IP);
}

static inline int ms_classify(const ms_cls_u8 *frame, ms_cls_u32 len,
			      ms_cls_u32 flags, struct ms_cls_result *out)
{
	return ms_classify_partial(frame, len, len, flags, out);
}

static inline int ms_cls_icmp_done(struct ms_cls_icmp_result *out,
				   int verdict)
{
	out->verdict = (ms_cls_u32)verdict;
	return verdict;
}

/* unreachable, time exceeded, parameter problem (and ICMPv6 too big) */
static inline int ms_cls_icmp_is_error(ms_cls_u8 family, ms_cls_u8 type)
{
	if (family == 2)
		return type == 3 || type == 11 || type == 12;
	return type >= 1 && type <= 4;
}

/* the quoted IPv4 packet at q, qlen bytes of the ICMP body */
static inline int ms_cls_quote4(const ms_cls_u8 *f, ms_cls_u32 avail,
				ms_cls_u32 q, ms_cls_u32 qlen,
				struct ms_cls_icmp_result *out)
{
	ms_cls_u32 ihl;

	if (qlen < 20)
		return ms_cls_icmp_done(out, MS_CLS_BAD_QUOTE);
	if (q + 20 > avail)
		return ms_cls_icmp_done(out, MS_CLS_HDR_BEYOND);
	ihl = (ms_cls_u32)(f[q] & 0xf) * 4;
	if ((f[q] >> 4) != 4 || ihl < 20 || ihl + 8 > qlen ||
	    ms_cls_rd16(f + q + 2) < ihl + 8)
		return ms_cls_icmp_done(out, MS_CLS_BAD_QUOTE);
	if (q + ihl + 8 > avail)
		return ms_cls_icmp_done(out, MS_CLS_HDR_BEYOND);
	if (ms_cls_rd16(f + q + 6) & 0x1fff)	/* not the first fragment */
		return ms_cls_icmp_done(out, MS_CLS_FRAGMENT);
	out->proto = f[q + 9];
	if (out->proto != 6 && out->proto != 17)
		return ms_cls_icmp_done(out, MS_CLS_NOT_TCPUDP);
	memcpy(out->src_addr, f + q + 12, 4);
	memcpy(out->dst_addr, f + q + 16, 4);
	out->src_port = (ms_cls_u16)ms_cls_rd16(f + q + ihl);
	out->dst_port = (ms_cls_u16)ms_cls_rd16(f + q + ihl + 2);
	return MS_CLS_OK;
}

/* the quoted IPv6 packet at q, qlen bytes of the ICMPv6 body */
static inline int ms_cls_quote6(const ms_cls_u8 *f, ms_cls_u32 avail,
				ms_cls_u32 q, ms_cls_u32 qlen,
				struct ms_cls_icmp_result *out)
{
	if (qlen < 48)
		return ms_cls_icmp_done(out, MS_CLS_BAD_QUOTE);
	if (q + 48 > avail)
		return ms_cls_icmp_done(out, MS_CLS_HDR_BEYOND);
	if ((f[q] >> 4) != 6 || ms_cls_rd16(f + q + 4) < 8)
		return ms_cls_icmp_done(out, MS_CLS_BAD_QUOTE);
	out->proto = f[q + 6];
	/* extension headers are not followed */
	if (out->proto != 6 && out->proto != 17)
		return ms_cls_icmp_done(out, MS_CLS_NOT_TCPUDP);
	memcpy(out->src_addr, f + q + 8, 16);
	memcpy(out->dst_addr, f + q + 24, 16);
	out->src_port = (ms_cls_u16)ms_cls_rd16(f + q + 40);
	out->dst_port = (ms_cls_u16)ms_cls_rd16(f + q + 42);
	return MS_CLS_OK;
}

static inline int ms_classify_icmp_partial(const ms_cls_u8 *frame,
					   ms_cls_u32 avail,
					   ms_cls_u32 frame_len,
					   ms_cls_u32 flags,
					   struct ms_cls_icmp_result *out)
{
	struct ms_cls_result ip;
	ms_cls_u32 icmp, len;
	ms_cls_u8 type;
	int v;

	memset(out, 0, sizeof(*out));
	v = ms_classify_partial(frame, avail, frame_len, flags, &ip);
	out->family = ip.family;
	out->vlan_tci = ip.vlan_tci;
	out->l3_off = ip.l3_off;
	if (v == MS_CLS_OK)
		return ms_cls_icmp_done(out, MS_CLS_NOT_ICMP_ERR);
	if (v != MS_CLS_NOT_TCPUDP)
		return ms_cls_icmp_done(out, v);
	if (ip.proto != (ip.family == 2 ? 1 : 58))
		return ms_cls_icmp_done(out, MS_CLS_NOT_ICMP_ERR);
	if (avail > frame_len)
		avail = frame_len;
	icmp = ip.l4_off;
	len = ip.l4_len;
	out->icmp_off = icmp;
	out->icmp_len = len;
	if (len < 8)
		return ms_cls_icmp_done(out, MS_CLS_BAD_ICMP);
	if (icmp + 8 > avail)
		return ms_cls_icmp_done(out, MS_CLS_HDR_BEYOND);
	type = frame[icmp];
	out->icmp_type = type;
	out->icmp_code = frame[icmp + 1];
	if (!ms_cls_icmp_is_error(ip.family, type))
		return ms_cls_icmp_done(out, MS_CLS_NOT_ICMP_ERR);
	out->quote_off = icmp + 8;
	if (ip.family == 2)
		v = ms_cls_quote4(frame, avail, icmp + 8, len - 8, out);
	else
		v = ms_cls_quote6(frame, avail, icmp + 8, len - 8, out);
	if (v != MS_CLS_OK)
		return v;
	if (memcmp(out->src_addr, ip.dst_addr, sizeof(ip.dst_addr)))
		return ms_cls_icmp_done(out, MS_CLS_ICMP_NOT_OURS);
	return ms_cls_icmp_done(out, MS_CLS_OK);
}

static inline int ms_classify_icmp(const ms_cls_u8 *frame, ms_cls_u32 len,
				   ms_cls_u32 flags,
				   struct ms_cls_icmp_result *out)
{
	return ms_classify_icmp_partial(frame, len, len, flags, out);
}

#endif /* MULTISTACK_CLASSIFY_H */
