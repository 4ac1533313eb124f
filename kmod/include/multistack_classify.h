/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * multistack_classify.h - kernel-independent Ethernet frame classifier.
 *
 * Shared, unchanged, by multistack.ko (RX demux and TX validation), the
 * Python cffi extension (multistack.classify) and the libFuzzer harness
 * (tests/fuzz).  Header
 * only: every function is `static inline`, uses no library call and reads
 * multi-byte fields byte by byte (no byte-order helpers, no unaligned
 * loads), so the same code compiles in the kernel and in user space.
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
 * L4 checksums are not verified.
 */
#ifndef MULTISTACK_CLASSIFY_H
#define MULTISTACK_CLASSIFY_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/string.h>
typedef u8 ms_cls_u8;
typedef u16 ms_cls_u16;
typedef u32 ms_cls_u32;
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
#define MS_CLS_LAST		MS_CLS_RH0

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
	if (ip[9] != 6 && ip[9] != 17)
		return ms_cls_done(out, MS_CLS_NOT_TCPUDP);
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

#endif /* MULTISTACK_CLASSIFY_H */
