// SPDX-License-Identifier: GPL-2.0
/*
 * ms_rej.c - rejected TX frames: the per-port ring and MS_IOC_REJECTS.
 *
 * Each port keeps the last MS_REJ_RING frames its TX syncs refused (reason,
 * time, length, first MS_REJ_SNAPLEN bytes), so that an administrator can
 * see why a stack's frames never left.  Only the refusal branches of
 * ms_tx.c write here: a frame that is sent costs nothing.
 *
 * Context and locking (see ms_internal.h):
 *   ms_rej_record   TX sync: process context, port->tx_mutex held, BH
 *                   disabled or not, maybe inside rcu_read_lock.  Takes
 *                   ring->lock (spinlock_t, never taken from softirq, so
 *                   without _bh); on PREEMPT_RT a sleeping lock, which
 *                   both BH-disabled and RCU sections allow there.
 *   ms_rej_ioctl    process context; takes rtnl (the port stays linked,
 *                   so allocated, while it is held), then ring->lock for
 *                   the copy.  Copies to user space after dropping both.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/rtnetlink.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>

#include "ms_internal.h"

/* Process context; about 10 KiB per port.  Free with kvfree. */
struct ms_rej_ring *ms_rej_alloc(gfp_t gfp)
{
	struct ms_rej_ring *ring = kvzalloc(sizeof(*ring), gfp);

	if (ring)
		spin_lock_init(&ring->lock);
	return ring;
}

/*
 * Keeps a refused frame: caplen of its bytes at data (NULL when there are
 * none to keep), len its full length.  The copy runs under the lock; the
 * bytes may be user space's shared buffer, which it may rewrite meanwhile:
 * then the entry shows some mix, as a capture of a racing writer would.
 */
void ms_rej_record(struct ms_rej_ring *ring, int reason, u32 len,
		   const void *data, u32 caplen)
{
	struct ms_rej_entry *e;

	caplen = data ? min_t(u32, caplen, MS_REJ_SNAPLEN) : 0;
	spin_lock(&ring->lock);
	e = &ring->e[ring->total % MS_REJ_RING];
	e->time_ns = ktime_get_real_ns();
	e->reason = reason;
	e->len = len;
	e->caplen = caplen;
	memcpy(e->data, data, caplen);
	memset(e->data + caplen, 0, MS_REJ_SNAPLEN - caplen);
	ring->total++;
	spin_unlock(&ring->lock);
}

/* rtnl held: the port of that id in net, or NULL. */
static struct ms_port *ms_rej_find_port(struct net *net, u32 id)
{
	struct ms_iface *iface;
	struct ms_port *port;

	ASSERT_RTNL();
	list_for_each_entry(iface, &ms_ifaces, node) {
		if (!net_eq(iface->net, net))
			continue;
		list_for_each_entry(port, &iface->ports, node)
			if (port->id == id)
				return port;
	}
	return NULL;
}

/* The /proc/net/multistack rule for a port's pid (ms_stats.c). */
static bool ms_rej_may_read(struct file *file, struct net *net,
			    const struct ms_port *port)
{
	return uid_eq(file->f_cred->euid, port->uid) ||
	       file_ns_capable(file, net->user_ns, CAP_NET_ADMIN);
}

int ms_rej_ioctl(struct file *file, struct ms_rej_req *req)
{
	struct net *net = current->nsproxy->net_ns;
	struct ms_rej_entry *buf;
	struct ms_rej_ring *ring;
	struct net_device *dev;
	struct ms_port *port;
	u32 n, i;
	int err = 0;

	if (req->version != MS_ABI_VERSION || req->flags ||
	    memchr_inv(req->reserved, 0, sizeof(req->reserved)))
		return -EINVAL;
	n = min_t(u32, req->count, MS_REJ_RING);
	buf = n ? kvmalloc_array(n, sizeof(*buf), GFP_KERNEL) : NULL;
	if (n && !buf)
		return -ENOMEM;

	rtnl_lock();
	port = ms_rej_find_port(net, req->port_id);
	if (!port) {
		err = -ENOENT;
		goto out_unlock;
	}
	if (!ms_rej_may_read(file, net, port)) {
		err = -EPERM;
		goto out_unlock;
	}
	dev = rtnl_dereference(port->iface->dev);
	strscpy(req->ifname, dev ? dev->name : port->iface->name,
		sizeof(req->ifname));
	req->ifindex = port->iface->ifindex;
	ring = port->rej;
	spin_lock(&ring->lock);
	req->total = ring->total;
	req->kept = min_t(u64, ring->total, MS_REJ_RING);
	n = min(n, req->kept);
	for (i = 0; i < n; i++)
		buf[i] = ring->e[(ring->total - n + i) % MS_REJ_RING];
	spin_unlock(&ring->lock);
	req->count = n;
out_unlock:
	rtnl_unlock();
	if (!err && n &&
	    copy_to_user(u64_to_user_ptr(req->entries), buf, n * sizeof(*buf)))
		err = -EFAULT;
	kvfree(buf);
	return err;
}
