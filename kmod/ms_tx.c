// SPDX-License-Identifier: GPL-2.0
/*
 * ms_tx.c - TX sync: validate the frames a port queued and send them.
 *
 * Context: process context (MS_IOC_TXSYNC, poll), may sleep; serialised per
 * port by port->tx_mutex.  The device is taken from iface->dev under RCU and
 * held (netdev_hold) for the sync.  Slots are handled in bursts of at most
 * MS_TX_BURST frames; between bursts nothing is held but tx_mutex and the
 * device reference, and the task may be rescheduled (cond_resched).  Within
 * a burst:
 *   1. reserve (may sleep): each slot is read once, its length and buffer
 *      index checked, and memory for its private copy taken: a fragment
 *      of the port's recycled pages (port->tx_pages, under tx_mutex;
 *      GFP_KERNEL), or an alloc_skb() skb for frames too big for one.
 *   The rest of the burst runs in one local_bh_disable() section:
 *   2. prepare: each frame is copied out of the shared buffer into its
 *      skb (heads from the per-CPU cache, napi_build_skb) and all checks
 *      run on that private copy (user space may rewrite the shared buffer
 *      concurrently);
 *   3. ownership: the burst's source tuples are looked up in the
 *      registration table under one rcu_read_lock;
 *   4. send (the softirqs it raises, such as a veth peer's receive, run
 *      once for the burst, at local_bh_enable()):
 *      - default: dev_queue_xmit() per frame, so the interface's qdisc
 *        (tc, netem, shaping) sees every frame;
 *      - MS_PORT_F_QDISC_BYPASS: under rcu_read_lock_bh, the TX queue's
 *        lock (HARD_TX_LOCK) taken once for the burst, frames handed to
 *        the driver with netdev_start_xmit(), xmit_more set on all but the
 *        last.  Packet taps (tcpdump) still see them.  A frame the driver
 *        cannot take (queue stopped, NETDEV_TX_BUSY, device down or no
 *        carrier) goes through dev_queue_xmit() after the lock is dropped,
 *        so it is queued, sent or counted like in the default mode, and
 *        counted once more as MS_STAT_TX_BYPASS_FALLBACK.
 *
 * Checks, in order, each counted on its own:
 *   runt (< MS_MIN_FRAME), oversize (> MTU + 14 or > buf_size), bad slot
 *   (buf_idx out of range), fragment, malformed (not IPv4/IPv6 TCP/UDP or
 *   bad lengths / IPv4 header checksum), bad MAC (Ethernet source is not
 *   the interface's address), not owned (source tuple registered nowhere,
 *   or its proof let it go), owned by another port.  Counters are summed
 *   locally and added to the per-CPU port and interface counters once per
 *   sync.  A refused frame is also kept, with its reason and first bytes,
 *   in the port's ring of rejected frames (ms_rej.c, MS_IOC_REJECTS), from
 *   the refusing branch only, so frames that pass pay nothing for it.
 *
 * PREEMPT_RT: local_bh_disable() stays preemptible there but disables
 * migration and takes the CPU's softirq lock, so the burst keeps its CPU
 * (smp_processor_id() is stable for the queue choice and HARD_TX_LOCK's
 * owner) and no other BH section of that CPU, dev_queue_xmit's included,
 * runs while we hold the TX queue lock (a sleeping lock there): the owner
 * check against recursion stays true.  Our own per-CPU state is only the
 * counters (this_cpu_add).
 */
#include <linux/kernel.h>
#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <linux/if_ether.h>
#include <linux/rtnetlink.h>
#include <linux/sched.h>

#include "ms_internal.h"
#include "include/multistack_classify.h"

#define MS_TX_BURST	64

/* One TX sync: the device, the checks' limits and the local counters. */
struct ms_tx_ctx {
	struct ms_port *port;
	struct net_device *dev;
	u32 max_len;			/* min(MTU + 14, buf_size) */
	u32 headroom;			/* LL_RESERVED_SPACE(dev) */
	u32 cnt[MS_STAT_MAX];
	u64 bytes;
};

static void ms_tx_flush_stats(struct ms_tx_ctx *c)
{
	struct ms_port *port = c->port;
	int i;

	for (i = 0; i < MS_STAT_MAX; i++) {
		if (!c->cnt[i])
			continue;
		ms_stat_add(port->stats, i, c->cnt[i]);
		ms_stat_add(port->iface->stats, i, c->cnt[i]);
	}
	if (c->bytes) {
		ms_stat_add(port->stats, MS_STAT_TX_BYTES, c->bytes);
		ms_stat_add(port->iface->stats, MS_STAT_TX_BYTES, c->bytes);
	}
}

/*
 * A refused frame: counted under its reason and kept in the port's ring of
 * rejected frames with its first bytes (data NULL: none can be read).
 */
static void ms_tx_refuse(struct ms_tx_ctx *c, int reason, u32 len,
			 const void *data)
{
	c->cnt[reason]++;
	ms_rej_record(c->port->rej, reason, len, data, len);
}

/* Key of the frame's source tuple, kept in skb->cb until the lookup. */
static struct ms_key *ms_tx_key(struct sk_buff *skb)
{
	BUILD_BUG_ON(sizeof(struct ms_key) > sizeof(skb->cb));
	return (struct ms_key *)skb->cb;
}

/*
 * TX frame memory: a few high-order pages per port, used in rotation and
 * carved into fragments, one per skb (napi_build_skb; skb_free_frag drops
 * the fragment's page reference).  A page is reused in place once only the
 * port's own reference is left, i.e. every skb carved from it was freed;
 * otherwise the port lets go of it (the skbs keep it alive) and takes a
 * fresh one.  So a driver that frees quickly gets the same warm pages
 * back, with none of the zeroing a fresh allocation costs under
 * init_on_alloc.  tp->bytes follows the pages held (at most MS_TX_PAGES)
 * for /proc/net/multistack, which reads it without tx_mutex (READ_ONCE).
 * The pages are charged to the sender's memory cgroup; bind charged the
 * most a port may hold to RLIMIT_MEMLOCK (ms_port.c).
 * tx_mutex held.
 */
static void *ms_tx_frag(struct ms_port *port, u32 size)
{
	struct ms_tx_pages *tp = &port->tx_pages;
	const u32 psize = PAGE_SIZE << MS_TX_PAGE_ORDER;
	struct page *page = tp->page[tp->cur];

	if (!page || tp->offset + size > psize) {
		tp->cur = (tp->cur + 1) % MS_TX_PAGES;
		page = tp->page[tp->cur];
		if (page && page_ref_count(page) != 1) {
			put_page(page);
			page = NULL;
			WRITE_ONCE(tp->bytes, tp->bytes - psize);
		}
		if (!page) {
			page = alloc_pages(GFP_KERNEL_ACCOUNT | __GFP_COMP |
					   __GFP_NOWARN | __GFP_NORETRY,
					   MS_TX_PAGE_ORDER);
			if (page)
				WRITE_ONCE(tp->bytes, tp->bytes + psize);
		}
		tp->page[tp->cur] = page;
		tp->offset = 0;
		if (!page)
			return NULL;
	}
	get_page(page);
	tp->offset += size;
	return page_address(page) + tp->offset - size;
}

void ms_port_tx_free_pages(struct ms_port *port)
{
	int i;

	for (i = 0; i < MS_TX_PAGES; i++)
		if (port->tx_pages.page[i])
			put_page(port->tx_pages.page[i]);
}

/*
 * One slot of a burst.  Phase 1 (may sleep) reads the slot once, checks
 * it and reserves memory for the private copy: a fragment of the port's
 * pages (ms_tx_frag_size bytes) or, for frames too big for one or when no
 * page could be had, an alloc_skb() skb.
 */
struct ms_tx_frame {
	void *mem;			/* the fragment, or the skb */
	u32 off;			/* the frame's offset in the pool */
	u16 len;			/* <= MS_MAX_BUF_SIZE */
	bool is_frag;
};

static u32 ms_tx_frag_size(const struct ms_tx_ctx *c, u32 len)
{
	return SKB_DATA_ALIGN(c->headroom + len) +
	       SKB_DATA_ALIGN(sizeof(struct skb_shared_info));
}

/*
 * A slot refused before its copy: kept with the bytes in its buffer (at
 * most MS_REJ_SNAPLEN < MS_MIN_BUF_SIZE), if its index is in range.
 */
static void ms_tx_refuse_slot(struct ms_tx_ctx *c, int reason, u32 idx,
			      u32 len)
{
	struct ms_port *port = c->port;

	BUILD_BUG_ON(MS_REJ_SNAPLEN > MS_MIN_BUF_SIZE);
	ms_tx_refuse(c, reason, len, idx < port->nbufs ?
		     port->pool + (size_t)idx * port->buf_size : NULL);
}

/* Phase 1: true when the slot passed; a refusal or failure is counted. */
static bool ms_tx_reserve(struct ms_tx_ctx *c,
			  const struct ms_netmap_slot *slot,
			  struct ms_tx_frame *f)
{
	struct ms_port *port = c->port;
	u32 idx = READ_ONCE(slot->buf_idx);
	u32 len = READ_ONCE(slot->len);
	int reason;
	u32 size;

	if (len < MS_MIN_FRAME)
		reason = MS_STAT_TX_REJ_RUNT;
	else if (len > c->max_len)
		reason = MS_STAT_TX_REJ_OVERSIZE;
	else if (idx >= port->nbufs)
		reason = MS_STAT_TX_REJ_BAD_SLOT;
	else
		reason = 0;
	if (reason) {
		ms_tx_refuse_slot(c, reason, idx, len);
		return false;
	}
	f->off = idx * port->buf_size;
	f->len = len;
	size = ms_tx_frag_size(c, len);
	f->mem = size <= PAGE_SIZE ? ms_tx_frag(port, size) : NULL;
	f->is_frag = f->mem;
	if (!f->mem)
		f->mem = alloc_skb(c->headroom + len, GFP_KERNEL);
	if (!f->mem) {
		c->cnt[MS_STAT_TX_ERROR]++;
		return false;
	}
	return true;
}

/*
 * Phase 2, BH disabled (napi_build_skb takes skb heads from the per-CPU
 * cache, refilled in bulk): copies the frame into its private skb and
 * runs every check that does not need the registration table on that
 * copy.  Returns the skb, its source tuple in ms_tx_key(skb), or NULL
 * when it was refused or failed (counted); the reserved memory is
 * consumed either way.
 */
static struct sk_buff *ms_tx_prepare(struct ms_tx_ctx *c,
				     const struct ms_tx_frame *f)
{
	struct net_device *dev = c->dev;
	struct ms_cls_result cls;
	struct sk_buff *skb = f->mem;
	struct ms_key *key;
	int v, reason;

	if (f->is_frag) {
		skb = napi_build_skb(f->mem, ms_tx_frag_size(c, f->len));
		if (!skb) {
			skb_free_frag(f->mem);
			c->cnt[MS_STAT_TX_ERROR]++;
			return NULL;
		}
	}
	skb_reserve(skb, c->headroom);
	skb_put_data(skb, c->port->pool + f->off, f->len);

	v = ms_classify(skb->data, f->len, 0, &cls);
	if (v != MS_CLS_OK) {
		reason = v == MS_CLS_FRAGMENT ? MS_STAT_TX_REJ_FRAGMENT :
						MS_STAT_TX_REJ_MALFORMED;
		goto refuse;
	}
	if (!ether_addr_equal(skb->data + ETH_ALEN, dev->dev_addr)) {
		reason = MS_STAT_TX_REJ_BAD_MAC;
		goto refuse;
	}
	key = ms_tx_key(skb);
	ms_key_fill(key, cls.family, cls.proto, cls.src_addr, cls.src_port);

	skb->dev = dev;
	skb_reset_mac_header(skb);
	skb_set_network_header(skb, cls.l3_off);
	skb_set_transport_header(skb, cls.l4_off);
	skb->protocol = cls.family == MS_FAMILY_INET ? htons(ETH_P_IP) :
						       htons(ETH_P_IPV6);
	skb->ip_summed = CHECKSUM_NONE;
	skb->priority = 0;
	return skb;

refuse:
	ms_tx_refuse(c, reason, skb->len, skb->data);	/* the private copy */
	kfree_skb(skb);
	return NULL;
}

/* Through the qdisc; counts the frame.  BH disabled by the caller. */
static void ms_tx_queue(struct ms_tx_ctx *c, struct sk_buff *skb)
{
	u32 len = skb->len;
	int rc = dev_queue_xmit(skb);

	if (rc != NET_XMIT_SUCCESS && rc != NET_XMIT_CN) {
		c->cnt[MS_STAT_TX_ERROR]++;
		return;
	}
	c->cnt[MS_STAT_TX_SENT]++;
	c->bytes += len;
}

/*
 * Qdisc bypass: hands skbs[0..n) to the driver under one TX queue lock.
 * Returns how many the driver consumed (sent or dropped, and counted); the
 * rest are still the caller's.
 */
static int ms_tx_direct(struct ms_tx_ctx *c, struct sk_buff **skbs, int n)
{
	struct net_device *dev = c->dev;
	struct netdev_queue *txq;
	netdev_tx_t rc;
	int cpu, i;
	u16 q;
	u32 len;

	if (!netif_running(dev) || !netif_carrier_ok(dev))
		return 0;
	rcu_read_lock_bh();		/* as dev_queue_xmit: taps are RCU */
	cpu = smp_processor_id();
	q = cpu % dev->real_num_tx_queues;
	txq = netdev_get_tx_queue(dev, q);
	HARD_TX_LOCK(dev, txq, cpu);
	for (i = 0; i < n; i++) {
		struct sk_buff *skb = skbs[i];

		if (netif_xmit_frozen_or_drv_stopped(txq))
			break;
		skb_set_queue_mapping(skb, q);
		if (dev_nit_active(dev))
			dev_queue_xmit_nit(skb, dev);
		len = skb->len;
		rc = netdev_start_xmit(skb, dev, txq, i + 1 < n);
		if (rc == NETDEV_TX_OK || rc == NET_XMIT_CN) {
			c->cnt[MS_STAT_TX_SENT]++;
			c->bytes += len;
		} else if (dev_xmit_complete(rc)) {
			c->cnt[MS_STAT_TX_ERROR]++;	/* driver dropped it */
		} else {
			break;				/* NETDEV_TX_BUSY */
		}
	}
	HARD_TX_UNLOCK(dev, txq);
	rcu_read_unlock_bh();
	return i;
}

/* Validates and sends slots [first, first + n) of the TX ring. */
static void ms_tx_burst(struct ms_tx_ctx *c, u32 first, u32 n)
{
	struct ms_port *port = c->port;
	struct ms_tx_frame frames[MS_TX_BURST];
	struct sk_buff *skbs[MS_TX_BURST];
	u32 mask = port->tx_slots - 1, i;
	int k = 0, j, done = 0;
	struct ms_reg *reg;

	/* reserve: may sleep; frames[0..k) are the slots that passed */
	for (i = 0; i < n; i++)
		if (ms_tx_reserve(c, ms_slot(port->tx, (first + i) & mask),
				  &frames[k]))
			k++;

	/*
	 * One BH section for the rest of the burst: skb heads come from the
	 * per-CPU cache, and the softirqs the frames raise (a veth peer's
	 * receive, qdisc runs) run once, for all of them, at the end.
	 */
	local_bh_disable();
	for (i = 0, j = 0; i < k; i++) {
		struct sk_buff *skb = ms_tx_prepare(c, &frames[i]);

		if (skb)
			skbs[j++] = skb;
	}
	k = j;

	/* ownership: the source tuple must be registered to this port */
	rcu_read_lock();
	for (i = 0, j = 0; i < k; i++) {
		reg = ms_table_owner(port->iface, c->dev, ms_tx_key(skbs[i]));
		if (reg && reg->port == port) {
			skbs[j++] = skbs[i];
			continue;
		}
		ms_tx_refuse(c, !reg ? MS_STAT_TX_REJ_NOT_OWNED :
				       MS_STAT_TX_REJ_OTHER_PORT,
			     skbs[i]->len, skbs[i]->data);
		kfree_skb(skbs[i]);
	}
	rcu_read_unlock();
	k = j;
	for (i = 0; i < k; i++)
		memset(skbs[i]->cb, 0, sizeof(skbs[i]->cb));

	if (port->qdisc_bypass && k) {
		done = ms_tx_direct(c, skbs, k);
		c->cnt[MS_STAT_TX_BYPASS_FALLBACK] += k - done;
	}
	for (; done < k; done++)
		ms_tx_queue(c, skbs[done]);
	local_bh_enable();
}

int ms_port_txsync(struct ms_port *port)
{
	struct ms_netmap_ring *ring = port->tx;
	u32 n = port->tx_slots;
	netdevice_tracker tracker;
	struct ms_tx_ctx ctx, *c = &ctx;
	struct net_device *dev;
	u32 head, i, todo;
	int err = 0;

	if (READ_ONCE(port->dead))
		return -ENXIO;
	mutex_lock(&port->tx_mutex);
	/* acquire: slot and buffer contents written before head are seen */
	head = smp_load_acquire(&ring->head);
	if (head >= n) {
		err = -EINVAL;
		goto out_unlock;
	}
	if (head == port->tx_hwcur)
		goto out_unlock;

	rcu_read_lock();
	dev = rcu_dereference(port->iface->dev);
	if (dev)
		netdev_hold(dev, &tracker, GFP_ATOMIC);
	rcu_read_unlock();
	if (!dev) {
		err = -ENXIO;
		goto out_unlock;
	}
	memset(c, 0, sizeof(*c));
	c->port = port;
	c->dev = dev;
	c->max_len = min_t(u32, READ_ONCE(dev->mtu) + ETH_HLEN, port->buf_size);
	c->headroom = LL_RESERVED_SPACE(dev);

	i = port->tx_hwcur;
	if (!netif_running(dev)) {
		err = -ENETDOWN;
		c->cnt[MS_STAT_TX_ERROR] = (head - i) & (n - 1);
		i = head;
	}
	while (i != head) {
		todo = min_t(u32, (head - i) & (n - 1), MS_TX_BURST);
		ms_tx_burst(c, i, todo);
		i = (i + todo) & (n - 1);
		cond_resched();
	}
	ms_tx_flush_stats(c);
	netdev_put(dev, &tracker);
	port->tx_hwcur = head;
	smp_store_release(&ring->tail, (head + n - 1) & (n - 1));
out_unlock:
	mutex_unlock(&port->tx_mutex);
	return err;
}
