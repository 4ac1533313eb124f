// SPDX-License-Identifier: GPL-2.0
/*
 * ms_iface.c - the life of an attached interface: attach, detach, the
 * netdevice notifier, lookups and the last reference.
 *
 * Context (see ms_internal.h for the locks):
 *   ms_iface_attach, ms_iface_detach: process context (ioctl), take rtnl.
 *   ms_iface_find_rtnl, ms_iface_detach_rtnl: rtnl held.
 *   ms_netdev_event: notifier, process context, rtnl held.
 *   ms_iface_put: any process context; the final free happens only after
 *   the iface left ms_ifaces and the rx_handler was unregistered.
 *   ms_iface_init, ms_iface_exit: module init / exit (ms_iface_exit
 *   detaches every interface still attached).
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/rtnetlink.h>
#include <linux/if_arp.h>
#include <linux/capability.h>
#include <net/net_namespace.h>

#include "ms_internal.h"

LIST_HEAD(ms_ifaces);
atomic_t ms_live_ifaces = ATOMIC_INIT(0);

/* rtnl held */
struct ms_iface *ms_iface_find_rtnl(struct net *net, const char *name)
{
	struct ms_iface *iface;

	list_for_each_entry(iface, &ms_ifaces, node) {
		struct net_device *dev = rtnl_dereference(iface->dev);

		if (dev && net_eq(dev_net(dev), net) &&
		    !strncmp(dev->name, name, IFNAMSIZ))
			return iface;
	}
	return NULL;
}

static struct ms_iface *ms_iface_by_dev_rtnl(struct net_device *dev)
{
	struct ms_iface *iface;

	list_for_each_entry(iface, &ms_ifaces, node)
		if (rtnl_dereference(iface->dev) == dev)
			return iface;
	return NULL;
}

static void ms_iface_free(struct kref *ref)
{
	struct ms_iface *iface = container_of(ref, struct ms_iface, ref);

	ms_table_destroy(iface);
	free_percpu(iface->stats);
	kfree(iface);
	atomic_dec(&ms_live_ifaces);
}

void ms_iface_put(struct ms_iface *iface)
{
	kref_put(&iface->ref, ms_iface_free);
}

int ms_iface_attach(struct ms_if_req *req)
{
	struct net *net = current->nsproxy->net_ns;
	struct ms_iface *iface;
	struct net_device *dev;
	int err;

	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;

	iface = kzalloc(sizeof(*iface), GFP_KERNEL);
	if (!iface)
		return -ENOMEM;
	iface->stats = ms_stats_alloc(GFP_KERNEL);
	if (!iface->stats) {
		err = -ENOMEM;
		goto err_free_iface;
	}
	err = ms_table_init(iface);
	if (err)
		goto err_free_stats;
	kref_init(&iface->ref);
	INIT_LIST_HEAD(&iface->ports);

	rtnl_lock();
	dev = __dev_get_by_name(net, req->ifname);
	if (!dev) {
		err = -ENODEV;
		goto err_unlock;
	}
	if (dev->type != ARPHRD_ETHER || dev->addr_len != ETH_ALEN) {
		err = -ENODEV;
		goto err_unlock;
	}
	if (ms_iface_by_dev_rtnl(dev)) {
		err = -EEXIST;
		goto err_unlock;
	}
	netdev_hold(dev, &iface->dev_tracker, GFP_KERNEL);
	iface->dev_held = dev;
	iface->net = dev_net(dev);
	iface->ifindex = dev->ifindex;
	strscpy(iface->name, dev->name, sizeof(iface->name));
	RCU_INIT_POINTER(iface->dev, dev);
	err = netdev_rx_handler_register(dev, ms_rx_handler, iface);
	if (err)
		goto err_put_dev;
	iface->attached = true;
	atomic_inc(&ms_live_ifaces);
	list_add_tail(&iface->node, &ms_ifaces);
	rtnl_unlock();
	return 0;

err_put_dev:
	RCU_INIT_POINTER(iface->dev, NULL);
	netdev_put(dev, &iface->dev_tracker);
	iface->dev_held = NULL;
err_unlock:
	rtnl_unlock();
	ms_table_destroy(iface);
err_free_stats:
	free_percpu(iface->stats);
err_free_iface:
	kfree(iface);
	return err;
}

/*
 * Detach: rtnl held.  Unhooks the rx_handler (which waits for running
 * handlers), kills every port (their tuples are dropped, their memory stays
 * until they are closed), forgets the device and drops the list's kref.
 */
static void ms_iface_detach_rtnl(struct ms_iface *iface)
{
	struct net_device *dev = iface->dev_held;
	struct ms_port *port;
	LIST_HEAD(regs);

	ASSERT_RTNL();
	list_del(&iface->node);
	iface->attached = false;
	netdev_rx_handler_unregister(dev);	/* includes synchronize_net */
	list_for_each_entry(port, &iface->ports, node) {
		ms_port_unhash_all(port, &regs);
		WRITE_ONCE(port->dead, true);
		wake_up_interruptible_all(&port->wq);
	}
	RCU_INIT_POINTER(iface->dev, NULL);
	synchronize_net();	/* TX paths no longer see dev or the tuples */
	ms_regs_free(&regs);
	netdev_put(dev, &iface->dev_tracker);
	iface->dev_held = NULL;
	ms_iface_put(iface);
}

int ms_iface_detach(struct ms_if_req *req)
{
	struct net *net = current->nsproxy->net_ns;
	struct ms_iface *iface;
	int err = 0;

	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;
	rtnl_lock();
	if (!__dev_get_by_name(net, req->ifname)) {
		err = -ENODEV;
		goto out;
	}
	iface = ms_iface_find_rtnl(net, req->ifname);
	if (!iface) {
		err = -ENOENT;
		goto out;
	}
	ms_iface_detach_rtnl(iface);
out:
	rtnl_unlock();
	return err;
}

static int ms_netdev_event(struct notifier_block *nb, unsigned long event,
			   void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct ms_iface *iface;

	switch (event) {
	case NETDEV_UNREGISTER:
		iface = ms_iface_by_dev_rtnl(dev);
		if (iface)
			ms_iface_detach_rtnl(iface);
		break;
	case NETDEV_DOWN:
		/* TX sync reports ENETDOWN; wake pollers so they notice */
		iface = ms_iface_by_dev_rtnl(dev);
		if (iface) {
			struct ms_port *port;

			list_for_each_entry(port, &iface->ports, node)
				wake_up_interruptible_all(&port->wq);
		}
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block ms_netdev_nb = {
	.notifier_call = ms_netdev_event,
};

int ms_iface_init(void)
{
	return register_netdevice_notifier(&ms_netdev_nb);
}

void ms_iface_exit(void)
{
	struct ms_iface *iface, *tmp;

	rtnl_lock();
	list_for_each_entry_safe(iface, tmp, &ms_ifaces, node)
		ms_iface_detach_rtnl(iface);
	rtnl_unlock();
	unregister_netdevice_notifier(&ms_netdev_nb);
}
