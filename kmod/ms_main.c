// SPDX-License-Identifier: GPL-2.0
/*
 * ms_main.c - module init/exit, /dev/multistack, ioctl dispatch,
 * per-netns setup.  Interfaces live in ms_iface.c.
 *
 * Locking: see ms_internal.h.  Here:
 *   ms_open/ms_release/ms_ioctl/ms_mmap/ms_poll: process context.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/poll.h>
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
static_assert(sizeof(struct ms_rej_entry) == 152);
static_assert(offsetof(struct ms_rej_entry, reason) == 8);
static_assert(offsetof(struct ms_rej_entry, data) == 24);
static_assert(sizeof(struct ms_rej_req) == 64);
static_assert(offsetof(struct ms_rej_req, entries) == 16);
static_assert(offsetof(struct ms_rej_req, total) == 24);
static_assert(offsetof(struct ms_rej_req, ifname) == 40);
static_assert(sizeof(struct ms_key) == 20);

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
	return cmd == MS_IOC_ATTACH ? ms_iface_attach(&req) : ms_iface_detach(&req);
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

	case MS_IOC_REJECTS: {
		struct ms_rej_req req;

		if (copy_from_user(&req, uarg, sizeof(req)))
			return -EFAULT;
		err = ms_rej_ioctl(file, &req);
		if (err)
			return err;
		if (copy_to_user(uarg, &req, sizeof(req)))
			return -EFAULT;
		return 0;
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
	err = ms_iface_init();
	if (err)
		goto err_pernet;
	err = misc_register(&ms_miscdev);
	if (err)
		goto err_iface;
	pr_info("multistack: loaded, ABI %d\n", MS_ABI_VERSION);
	return 0;

err_iface:
	ms_iface_exit();
err_pernet:
	unregister_pernet_subsys(&ms_net_ops);
	return err;
}

static void __exit ms_exit(void)
{
	misc_deregister(&ms_miscdev);
	/* no fd can be open (each holds a module reference) */
	ms_iface_exit();
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
