// SPDX-License-Identifier: GPL-2.0
/*
 * ms_tx.c - TX sync: validate the frames a port queued and send them.
 *
 * Context: process context (MS_IOC_TXSYNC, poll), may sleep; serialised per
 * port by port->tx_mutex.  The device is taken from iface->dev under RCU and
 * held (netdev_hold) for the batch; the registration table is read under
 * rcu_read_lock per frame.
 *
 * Every frame is first copied out of the shared buffer into a fresh skb,
 * and all checks run on that private copy (user space may rewrite the
 * shared buffer concurrently).  Checks, in order, each counted on its own:
 *   runt (< MS_MIN_FRAME), oversize (> MTU + 14 or > buf_size), bad slot
 *   (buf_idx out of range), fragment, malformed (not IPv4/IPv6 TCP/UDP or
 *   bad lengths / IPv4 header checksum), bad MAC (Ethernet source is not
 *   the interface's address), not owned (source tuple registered nowhere),
 *   owned by another port.
 * A frame that passes is handed to dev_queue_xmit().
 */
#include <linux/kernel.h>
#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <linux/if_ether.h>
#include <linux/rtnetlink.h>

#include "ms_internal.h"
#include "include/multistack_classify.h"

static void ms_tx_count(struct ms_port *port, int stat)
{
	ms_stat_inc(port->stats, stat);
	ms_stat_inc(port->iface->stats, stat);
}

/* Returns -1 if the frame was sent, else the MS_STAT_* reason. */
static int ms_tx_one(struct ms_port *port, struct net_device *dev,
		     const struct ms_netmap_slot *slot)
{
	u32 idx = READ_ONCE(slot->buf_idx);
	u32 len = READ_ONCE(slot->len);
	struct ms_cls_result cls;
	struct ms_reg *reg;
	struct ms_key key;
	struct sk_buff *skb;
	int v, rc;

	if (len < MS_MIN_FRAME)
		return MS_STAT_TX_REJ_RUNT;
	if (len > READ_ONCE(dev->mtu) + ETH_HLEN || len > port->buf_size)
		return MS_STAT_TX_REJ_OVERSIZE;
	if (idx >= port->nbufs)
		return MS_STAT_TX_REJ_BAD_SLOT;

	skb = alloc_skb(LL_RESERVED_SPACE(dev) + len, GFP_KERNEL);
	if (!skb)
		return MS_STAT_TX_ERROR;
	skb_reserve(skb, LL_RESERVED_SPACE(dev));
	skb_put_data(skb, port->pool + (size_t)idx * port->buf_size, len);

	v = ms_classify(skb->data, len, 0, &cls);
	if (v != MS_CLS_OK) {
		rc = v == MS_CLS_FRAGMENT ? MS_STAT_TX_REJ_FRAGMENT :
					    MS_STAT_TX_REJ_MALFORMED;
		goto drop;
	}
	if (!ether_addr_equal(skb->data + ETH_ALEN, dev->dev_addr)) {
		rc = MS_STAT_TX_REJ_BAD_MAC;
		goto drop;
	}
	memset(&key, 0, sizeof(key));
	memcpy(key.addr, cls.src_addr, 16);
	key.family = cls.family;
	key.proto = cls.proto;
	key.port = cls.src_port;
	rcu_read_lock();
	reg = ms_table_lookup(port->iface, &key);
	rc = !reg ? MS_STAT_TX_REJ_NOT_OWNED :
	     reg->port != port ? MS_STAT_TX_REJ_OTHER_PORT : -1;
	rcu_read_unlock();
	if (rc >= 0)
		goto drop;

	skb->dev = dev;
	skb_reset_mac_header(skb);
	skb_set_network_header(skb, cls.l3_off);
	skb_set_transport_header(skb, cls.l4_off);
	skb->protocol = cls.family == MS_FAMILY_INET ? htons(ETH_P_IP) :
						       htons(ETH_P_IPV6);
	skb->ip_summed = CHECKSUM_NONE;
	skb->priority = 0;
	rc = dev_queue_xmit(skb);
	if (rc != NET_XMIT_SUCCESS && rc != NET_XMIT_CN)
		return MS_STAT_TX_ERROR;
	ms_stat_add(port->stats, MS_STAT_TX_BYTES, len);
	ms_stat_add(port->iface->stats, MS_STAT_TX_BYTES, len);
	return -1;

drop:
	kfree_skb(skb);
	return rc;
}

int ms_port_txsync(struct ms_port *port)
{
	struct ms_netmap_ring *ring = port->tx;
	u32 n = port->tx_slots;
	netdevice_tracker tracker;
	struct net_device *dev;
	u32 head, i;
	int err = 0, rc;

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
	if (!netif_running(dev))
		err = -ENETDOWN;

	for (i = port->tx_hwcur; i != head; i = (i + 1) & (n - 1)) {
		if (err)
			rc = MS_STAT_TX_ERROR;
		else
			rc = ms_tx_one(port, dev, ms_slot(ring, i));
		ms_tx_count(port, rc < 0 ? MS_STAT_TX_SENT : rc);
		if (need_resched())
			cond_resched();
	}
	netdev_put(dev, &tracker);
	port->tx_hwcur = head;
	smp_store_release(&ring->tail, (head + n - 1) & (n - 1));
out_unlock:
	mutex_unlock(&port->tx_mutex);
	return err;
}
