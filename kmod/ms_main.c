// SPDX-License-Identifier: GPL-2.0
/*
 * ms_main.c - module init/exit, /dev/multistack, ioctl dispatch, attach /
 * detach, netdevice notifier, per-netns setup.
 *
 * Locking: see ms_internal.h.  Here:
 *   ms_open/ms_release/ms_ioctl/ms_mmap/ms_poll: process context.
 *   ms_attach/ms_detach: process context, take rtnl.
 *   ms_iface_detach_rtnl: rtnl held (ioctl, notifier, module exit).
 *   ms_netdev_event: notifier, process context, rtnl held.
 *   ms_iface_put: any process context; the final free happens only after
 *   the iface left ms_ifaces and the rx_handler was unregistered.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/poll.h>
#include <linux/rtnetlink.h>
#include <linux/if_arp.h>
#include <linux/random.h>
#include <linux/capability.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "ms_internal.h"
#include "ms_compat.h"

/* layout locks: these must never change */
static_assert(sizeof(struct ms_netmap_slot) == 16);
static_assert(offsetof(struct ms_netmap_slot, buf_idx) == 0);
static_assert(offsetof(struct ms_netmap_slot, len) == 4);
static_assert(offsetof(struct ms_netmap_slot, flags) == 6);
static_assert(offsetof(struct ms_netmap_slot, ptr) == 8);
static_assert(sizeof(struct ms_netmap_ring) == MS_RING_SLOTS_OFS);
static_assert(offsetof(struct ms_netmap_ring, buf_ofs) == 0);
static_assert(offsetof(struct ms_netmap_ring, num_slots) == 8);
static_assert(offsetof(struct ms_netmap_ring, nr_buf_size) == 12);
static_assert(offsetof(struct ms_netmap_ring, ringid) == 16);
static_assert(offsetof(struct ms_netmap_ring, dir) == 18);
static_assert(offsetof(struct ms_netmap_ring, head) == 20);
static_assert(offsetof(struct ms_netmap_ring, cur) == 24);
static_assert(offsetof(struct ms_netmap_ring, tail) == 28);
static_assert(offsetof(struct ms_netmap_ring, flags) == 32);
static_assert(offsetof(struct ms_netmap_ring, ts_sec) == 40);
static_assert(offsetof(struct ms_netmap_ring, ts_usec) == 48);
static_assert(sizeof(struct ms_netmap_if) == 128);
static_assert(offsetof(struct ms_netmap_if, ni_name) == 0);
static_assert(offsetof(struct ms_netmap_if, ni_version) == 16);
static_assert(offsetof(struct ms_netmap_if, ni_tx_rings) == 24);
static_assert(offsetof(struct ms_netmap_if, ni_rx_rings) == 28);
static_assert(offsetof(struct ms_netmap_if, ni_mem_size) == 44);
static_assert(offsetof(struct ms_netmap_if, ring_ofs) == 48);
static_assert(offsetof(struct ms_netmap_if, ni_nbufs) == 64);
static_assert(offsetof(struct ms_netmap_if, ni_buf_size) == 68);
static_assert(sizeof(struct ms_if_req) == 48);
static_assert(sizeof(struct ms_port_req) == 80);
static_assert(sizeof(struct ms_reg_req) == 48);
static_assert(offsetof(struct ms_reg_req, addr) == 16);
static_assert(sizeof(struct ms_stats) == 544);
static_assert(offsetof(struct ms_stats, port) == 32);
static_assert(sizeof(struct ms_key) == 20);

LIST_HEAD(ms_ifaces);
atomic_t ms_live_ifaces = ATOMIC_INIT(0);
atomic_t ms_live_ports = ATOMIC_INIT(0);
atomic_t ms_live_regs = ATOMIC_INIT(0);

static bool ms_zero(const void *p, size_t n)
{
	return !memchr_inv(p, 0, n);
}

static bool ms_name_ok(const char *name)
{
	return name[0] && strnlen(name, MS_IFNAMSIZ) < MS_IFNAMSIZ;
}

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

	free_percpu(iface->stats);
	kfree(iface);
	atomic_dec(&ms_live_ifaces);
}

void ms_iface_put(struct ms_iface *iface)
{
	kref_put(&iface->ref, ms_iface_free);
}

static int ms_attach(struct ms_if_req *req)
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
	iface->stats = ms_stats_alloc();
	if (!iface->stats) {
		err = -ENOMEM;
		goto err_free_iface;
	}
	kref_init(&iface->ref);
	INIT_LIST_HEAD(&iface->ports);
	get_random_bytes(&iface->seed, sizeof(iface->seed));

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

static int ms_detach(struct ms_if_req *req)
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

/* ---- file operations (process context) ---- */

static int ms_open(struct inode *inode, struct file *file)
{
	struct ms_file *mf = kzalloc(sizeof(*mf), GFP_KERNEL);

	if (!mf)
		return -ENOMEM;
	file->private_data = mf;
	return nonseekable_open(inode, file);
}

static int ms_release(struct inode *inode, struct file *file)
{
	struct ms_file *mf = file->private_data;

	if (mf->port)
		ms_port_release(mf->port);
	kfree(mf);
	return 0;
}

static struct ms_port *ms_file_port(struct file *file)
{
	struct ms_file *mf = file->private_data;

	return smp_load_acquire(&mf->port);
}

static int ms_check_hdr(u32 version, u32 flags)
{
	if (version != MS_ABI_VERSION || flags)
		return -EINVAL;
	return 0;
}

static long ms_ioctl_if(unsigned int cmd, void __user *uarg)
{
	struct ms_if_req req;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (ms_check_hdr(req.version, req.flags) ||
	    !ms_zero(req.reserved, sizeof(req.reserved)) ||
	    !ms_name_ok(req.ifname))
		return -EINVAL;
	return cmd == MS_IOC_ATTACH ? ms_attach(&req) : ms_detach(&req);
}

static long ms_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct ms_file *mf = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct ms_port *port;
	long err;

	switch (cmd) {
	case MS_IOC_ATTACH:
	case MS_IOC_DETACH:
		return ms_ioctl_if(cmd, uarg);

	case MS_IOC_PORT_BIND: {
		struct ms_port_req req;

		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		if (ms_check_hdr(req.version,
				 req.flags & ~MS_PORT_F_ALL) ||
		    !ms_zero(req.reserved, sizeof(req.reserved)) ||
		    !ms_name_ok(req.ifname) || req.mem_size ||
		    req.ifindex || req.port_id)
			return -EINVAL;
		err = ms_port_bind(mf, &req);
		if (err)
			return err;
		if (copy_to_user(uarg, &req, sizeof(req)))
			return -EFAULT;
		return 0;
	}

	case MS_IOC_INFO: {
		struct ms_port_req req;

		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		if (ms_check_hdr(req.version, req.flags) ||
		    !ms_zero(req.reserved, sizeof(req.reserved)))
			return -EINVAL;
		port = ms_file_port(file);
		if (!port)
			return -ENOTCONN;
		ms_port_fill_info(port, &req);
		if (copy_to_user(uarg, &req, sizeof(req)))
			return -EFAULT;
		return 0;
	}

	case MS_IOC_REGISTER:
	case MS_IOC_UNREGISTER: {
		struct ms_reg_req req;

		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		if (ms_check_hdr(req.version, req.flags) ||
		    !ms_zero(req.reserved, sizeof(req.reserved)))
			return -EINVAL;
		port = ms_file_port(file);
		if (!port)
			return -ENOTCONN;
		if (cmd == MS_IOC_REGISTER)
			return ms_register(port, &req);
		return ms_unregister(port, &req);
	}

	case MS_IOC_TXSYNC:
		port = ms_file_port(file);
		if (!port)
			return -ENOTCONN;
		return ms_port_txsync(port);

	case MS_IOC_RXSYNC:
		port = ms_file_port(file);
		if (!port)
			return -ENOTCONN;
		return ms_port_rxsync(port);

	case MS_IOC_STATS: {
		struct ms_stats *st = kzalloc(sizeof(*st), GFP_KERNEL);

		if (!st)
			return -ENOMEM;
		if (copy_from_user(st, uarg, sizeof(*st))) {
			err = -EFAULT;
			goto out_stats;
		}
		err = ms_stats_ioctl(mf, st);
		if (!err && copy_to_user(uarg, st, sizeof(*st)))
			err = -EFAULT;
out_stats:
		kfree(st);
		return err;
	}
	}
	return -ENOTTY;
}

static int ms_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ms_port *port = ms_file_port(file);

	if (!port)
		return -ENOTCONN;
	return ms_port_mmap(port, vma);
}

static __poll_t ms_poll(struct file *file, struct poll_table_struct *wait)
{
	struct ms_port *port = ms_file_port(file);

	if (!port)
		return EPOLLERR;
	poll_wait(file, &port->wq, wait);
	return ms_port_poll_mask(port, poll_requested_events(wait));
}

static const struct file_operations ms_fops = {
	.owner		= THIS_MODULE,
	.open		= ms_open,
	.release	= ms_release,
	.unlocked_ioctl	= ms_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= ms_mmap,
	.poll		= ms_poll,
	.llseek		= MS_NO_LLSEEK,
};

static struct miscdevice ms_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "multistack",
	.fops	= &ms_fops,
	.mode	= 0666,
};

/* ---- per network namespace: /proc/net/multistack ---- */

static int __net_init ms_net_init(struct net *net)
{
	return ms_proc_init_net(net);
}

static void __net_exit ms_net_exit(struct net *net)
{
	ms_proc_exit_net(net);
}

static struct pernet_operations ms_net_ops = {
	.init = ms_net_init,
	.exit = ms_net_exit,
};

static int __init ms_init(void)
{
	int err;

	err = register_pernet_subsys(&ms_net_ops);
	if (err)
		return err;
	err = register_netdevice_notifier(&ms_netdev_nb);
	if (err)
		goto err_pernet;
	err = misc_register(&ms_miscdev);
	if (err)
		goto err_notifier;
	pr_info("multistack: loaded, ABI %d\n", MS_ABI_VERSION);
	return 0;

err_notifier:
	unregister_netdevice_notifier(&ms_netdev_nb);
err_pernet:
	unregister_pernet_subsys(&ms_net_ops);
	return err;
}

static void __exit ms_exit(void)
{
	struct ms_iface *iface, *tmp;

	misc_deregister(&ms_miscdev);
	/* no fd can be open (each holds a module reference): detach all */
	rtnl_lock();
	list_for_each_entry_safe(iface, tmp, &ms_ifaces, node)
		ms_iface_detach_rtnl(iface);
	rtnl_unlock();
	unregister_netdevice_notifier(&ms_netdev_nb);
	unregister_pernet_subsys(&ms_net_ops);
	if (atomic_read(&ms_live_ifaces) || atomic_read(&ms_live_ports) ||
	    atomic_read(&ms_live_regs))
		pr_err("multistack: leak at exit: %d interfaces, %d ports, %d registrations\n",
		       atomic_read(&ms_live_ifaces), atomic_read(&ms_live_ports),
		       atomic_read(&ms_live_regs));
	pr_info("multistack: unloaded\n");
}

module_init(ms_init);
module_exit(ms_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("MultiStack project");
MODULE_DESCRIPTION("MultiStack: netmap-style virtual ports for user-level network stacks beside the OS stack");
MODULE_VERSION("0.1");
