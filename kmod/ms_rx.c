// SPDX-License-Identifier: GPL-2.0
/*
 * ms_rx.c - the rx_handler: demultiplex received frames to ports.
 *
 * Context: softirq (NAPI / netif_receive_skb), inside the core's
 * rcu_read_lock; never sleeps.  Reads the iface (rx_handler_data) and its
 * hash table under RCU; writes a port's RX ring under port->rx_lock
 * (spin_lock, BH already disabled here).
 *
 * Policy
 *   - Frames with a VLAN tag (hardware-accelerated or left in-band by the
 *     core), frames not addressed to this host (PACKET_OTHERHOST), non-IP
 *     and non-TCP/UDP frames, IP fragments and malformed frames are passed
 *     to the OS stack untouched (RX_HANDLER_PASS) and counted.
 *   - A well-formed TCP/UDP frame whose destination tuple is registered
 *     (exactly, or as the wildcard of its port while the destination
 *     address is on the interface: ms_table_owner) is copied whole (from
 *     the Ethernet header) into the owning port's RX ring and consumed.
 *     Ring full, frame larger than the port's buffers or a corrupted slot:
 *     dropped, counted, consumed.  So is a frame whose data cannot be
 *     copied (counted rx_malformed; the skb's own lengths make this
 *     unreachable in practice).
 *   - GSO (GRO-merged) frames are segmented first, so a port always sees
 *     wire-sized frames; one that cannot be segmented is dropped and
 *     counted as rx_drop_size.
 *   - An ICMP/ICMPv6 error (destination unreachable, fragmentation needed /
 *     packet too big, time exceeded, parameter problem) whose quoted packet
 *     left from a registered tuple (its SOURCE tuple, owned as above: the
 *     quote is a packet the port sent) goes to that port like a frame to
 *     it, counted once more as rx_icmp_delivered.  The quote is validated
 *     by ms_classify_icmp_partial (multistack_classify.h); everything else
 *     ICMP (echo, ND, redirects, errors about the OS's tuples) is passed.
 *   - A frame with CHECKSUM_PARTIAL (e.g. from a local veth peer) gets its
 *     L4 checksum completed in the copy, so the port always sees a valid
 *     checksum.
 */
#include <linux/kernel.h>
#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <linux/if_ether.h>
#include <linux/if_vlan.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <net/checksum.h>

#include "ms_internal.h"
#include "ms_compat.h"
#include "include/multistack_classify.h"

/*
 * Copies one frame into the port's RX ring.  Returns false if it was
 * dropped (counted); else true, with *kick set when the waiters must be
 * woken: only the first delivery after a sync wakes them (the sync in poll
 * clears rx_kicked under rx_lock before the task sleeps).
 */
static bool ms_rx_deliver(struct ms_port *port, struct sk_buff *skb,
			  bool icmp, bool *kick)
{
	u32 len = skb->len + ETH_HLEN;
	struct ms_netmap_slot *slot;
	u32 n = port->rx_slots;
	u32 idx;
	u8 *buf;
	int stat = -1;

	if (len > port->buf_size) {
		ms_stat_inc(port->stats, MS_STAT_RX_DROP_SIZE);
		ms_stat_inc(port->iface->stats, MS_STAT_RX_DROP_SIZE);
		return false;
	}

	spin_lock(&port->rx_lock);
	if (((port->rx_hwhead - port->rx_hwtail - 1) & (n - 1)) == 0) {
		stat = MS_STAT_RX_DROP_FULL;
		goto unlock;
	}
	slot = ms_slot(port->rx, port->rx_hwtail);
	idx = READ_ONCE(slot->buf_idx);
	if (idx >= port->nbufs) {
		stat = MS_STAT_RX_DROP_BAD_SLOT;
		goto unlock;
	}
	buf = port->pool + (size_t)idx * port->buf_size;
	memcpy(buf, skb_mac_header(skb), ETH_HLEN);
	if (skb_copy_bits(skb, 0, buf + ETH_HLEN, skb->len)) {
		stat = MS_STAT_RX_MALFORMED;
		goto unlock;
	}
	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		/* csum_start is relative to skb->head, the copy starts at
		 * the MAC header */
		int start = skb_checksum_start_offset(skb) + ETH_HLEN;
		int off = start + skb->csum_offset;

		if (start >= ETH_HLEN && off + 2 <= (int)len) {
			__wsum csum = csum_partial(buf + start, len - start, 0);
			__sum16 sum = csum_fold(csum);

			if (!sum &&
			    skb->csum_offset == offsetof(struct udphdr, check))
				sum = CSUM_MANGLED_0;
			put_unaligned(sum, (__sum16 *)(buf + off));
		}
	}
	WRITE_ONCE(slot->len, (u16)len);
	WRITE_ONCE(slot->flags, 0);
	/* read locklessly by ms_rxsync_idle */
	WRITE_ONCE(port->rx_hwtail, (port->rx_hwtail + 1) & (n - 1));
	if (!port->rx_kicked) {
		port->rx_kicked = true;
		*kick = true;
	}
unlock:
	spin_unlock(&port->rx_lock);
	if (stat >= 0) {
		ms_stat_inc(port->stats, stat);
		ms_stat_inc(port->iface->stats, stat);
		return false;
	}
	ms_stat_inc(port->stats, MS_STAT_RX_DELIVERED);
	ms_stat_add(port->stats, MS_STAT_RX_BYTES, len);
	ms_stat_inc(port->iface->stats, MS_STAT_RX_DELIVERED);
	ms_stat_add(port->iface->stats, MS_STAT_RX_BYTES, len);
	if (icmp) {
		ms_stat_inc(port->stats, MS_STAT_RX_ICMP_DELIVERED);
		ms_stat_inc(port->iface->stats, MS_STAT_RX_ICMP_DELIVERED);
	}
	return true;
}

/*
 * An ICMP error in the contiguous view `f` (`avail` of `frame_len` bytes):
 * the port owning the quoted source tuple (RCU), or NULL with *stat set.
 */
static struct ms_port *ms_rx_match_icmp(struct ms_iface *iface,
					struct net_device *dev, const u8 *f,
					u32 avail, u32 frame_len, int *stat)
{
	struct ms_cls_icmp_result cls;
	struct ms_reg *reg;
	struct ms_key key;
	int v;

	v = ms_classify_icmp_partial(f, avail, frame_len, 0, &cls);
	if (v != MS_CLS_OK) {
		*stat = MS_CLS_IS_MALFORMED(v) ? MS_STAT_RX_MALFORMED :
						 MS_STAT_RX_NOT_IP;
		return NULL;
	}
	*stat = MS_STAT_RX_NOT_IP;	/* about a tuple of the OS */
	ms_key_fill(&key, cls.family, cls.proto, cls.src_addr, cls.src_port);
	reg = ms_table_owner(iface, dev, &key);
	if (!reg)
		return NULL;
	return reg->port;
}

/*
 * Classifies the frame; returns the owning port (RCU) or NULL, in which
 * case *stat says why it goes to the OS.  *icmp tells an ICMP error about
 * the port's own tuple from a frame to it.
 */
static struct ms_port *ms_rx_match(struct ms_iface *iface, struct sk_buff *skb,
				   int *stat, bool *icmp)
{
	u8 hdr[MS_CLS_HDR_MAX];
	struct ms_cls_result cls;
	struct ms_reg *reg;
	struct ms_key key;
	u32 avail, flen = skb->len + ETH_HLEN;
	const u8 *f;
	int v;

	*stat = MS_STAT_RX_PASSED;
	if (skb_vlan_tag_present(skb)) {
		*stat = MS_STAT_RX_VLAN;
		return NULL;
	}
	if (skb->pkt_type == PACKET_OTHERHOST)
		return NULL;
	if (skb->protocol != htons(ETH_P_IP) &&
	    skb->protocol != htons(ETH_P_IPV6)) {
		*stat = MS_STAT_RX_NOT_IP;
		return NULL;
	}
	if (!skb_mac_header_was_set(skb) ||
	    skb_network_offset(skb) != 0 ||
	    skb->data - skb_mac_header(skb) != ETH_HLEN) {
		*stat = MS_STAT_RX_NOT_IP;
		return NULL;
	}

	/*
	 * The classifier needs the headers contiguous from the MAC header.
	 * The MAC header sits right before skb->data in the linear area; when
	 * the linear area holds the whole frame or MS_CLS_HDR_MAX bytes of it,
	 * classify in place (it reads nothing past `avail`), else copy that
	 * much first.
	 */
	avail = min_t(u32, skb->len, sizeof(hdr) - ETH_HLEN);
	if (skb_headlen(skb) >= avail) {
		f = skb_mac_header(skb);
		avail = skb_headlen(skb);
	} else {
		memcpy(hdr, skb_mac_header(skb), ETH_HLEN);
		if (skb_copy_bits(skb, 0, hdr + ETH_HLEN, avail)) {
			*stat = MS_STAT_RX_MALFORMED;
			return NULL;
		}
		f = hdr;
	}
	v = ms_classify_partial(f, avail + ETH_HLEN, flen, 0, &cls);
	/* ICMP reads the same view: nothing past it */
	if (v == MS_CLS_NOT_TCPUDP &&
	    cls.proto == (cls.family == MS_FAMILY_INET ? IPPROTO_ICMP :
							 IPPROTO_ICMPV6)) {
		*icmp = true;
		return ms_rx_match_icmp(iface, skb->dev, f, avail + ETH_HLEN,
					flen, stat);
	}
	if (v != MS_CLS_OK) {
		if (MS_CLS_IS_MALFORMED(v))
			*stat = MS_STAT_RX_MALFORMED;
		else if (v == MS_CLS_FRAGMENT)
			*stat = MS_STAT_RX_FRAGMENT;
		else if (v == MS_CLS_VLAN)
			*stat = MS_STAT_RX_VLAN;
		else
			*stat = MS_STAT_RX_NOT_IP;
		return NULL;
	}
	ms_key_fill(&key, cls.family, cls.proto, cls.dst_addr, cls.dst_port);
	reg = ms_table_owner(iface, skb->dev, &key);
	if (!reg)
		return NULL;
	return reg->port;
}

/* Segments a GSO frame and delivers every segment; consumes skb. */
static void ms_rx_gso(struct ms_port *port, struct sk_buff *skb)
{
	struct sk_buff *segs, *seg, *next;
	bool kick = false;

	skb = skb_share_check(skb, GFP_ATOMIC);
	if (!skb)
		return;
	__skb_push(skb, ETH_HLEN);
	segs = skb_gso_segment(skb, 0);
	if (IS_ERR_OR_NULL(segs)) {
		ms_stat_inc(port->stats, MS_STAT_RX_DROP_SIZE);
		ms_stat_inc(port->iface->stats, MS_STAT_RX_DROP_SIZE);
		kfree_skb(skb);
		return;
	}
	consume_skb(skb);
	skb_list_walk_safe(segs, seg, next) {
		skb_mark_not_on_list(seg);
		skb_reset_mac_header(seg);
		__skb_pull(seg, ETH_HLEN);
		if (ms_rx_deliver(port, seg, false, &kick))
			consume_skb(seg);
		else
			kfree_skb(seg);
	}
	if (kick && wq_has_sleeper(&port->wq))
		wake_up_interruptible(&port->wq);
}

rx_handler_result_t ms_rx_handler(struct sk_buff **pskb)
{
	struct sk_buff *skb = *pskb;
	struct ms_iface *iface = rcu_dereference(skb->dev->rx_handler_data);
	struct ms_port *port;
	bool kick = false, icmp = false;
	int stat;

	if (unlikely(!iface))
		return RX_HANDLER_PASS;
	port = ms_rx_match(iface, skb, &stat, &icmp);
	if (!port) {
		ms_stat_inc(iface->stats, stat);
		if (stat != MS_STAT_RX_PASSED)
			ms_stat_inc(iface->stats, MS_STAT_RX_PASSED);
		return RX_HANDLER_PASS;
	}
	if (skb_is_gso(skb)) {
		ms_rx_gso(port, skb);
		return RX_HANDLER_CONSUMED;
	}
	if (ms_rx_deliver(port, skb, icmp, &kick)) {
		consume_skb(skb);
		/* pairs with poll_wait() + rx_lock in ms_port_poll_mask */
		if (kick && wq_has_sleeper(&port->wq))
			wake_up_interruptible(&port->wq);
	} else {
		kfree_skb(skb);
	}
	return RX_HANDLER_CONSUMED;
}
