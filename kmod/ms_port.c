// SPDX-License-Identifier: GPL-2.0
/*
 * ms_port.c - ports: shared memory layout, mmap, RX sync, poll, release.
 *
 * Context and locking (see ms_internal.h):
 *   ms_port_bind       process context; charges and allocates the port's
 *                      memory without any lock, takes rtnl only to check
 *                      the interface (before) and to link the port (after).
 *   ms_port_release    process context (file release); takes rtnl, then
 *                      waits for an RCU grace period before freeing.
 *   ms_port_mmap       process context (mmap_lock held by the caller).
 *   ms_port_rxsync     process context; takes port->rx_lock (BH), except
 *                      when nothing changed (ms_rxsync_idle, lockless).
 *   ms_port_poll_mask  process context; RX sync + TX sync.
 *
 * Memory: one area per port, mapped whole by mmap():
 *   [0, MS_IF_SIZE) netmap_if | TX ring | RX ring | buffer pool
 * every part page aligned.  The kernel never trusts anything it reads back
 * from this area: head and buf_idx are range-checked at every use.
 * The area is zeroed order-0 pages charged to the opener's memory cgroup,
 * vmapped with VM_USERMAP for remap_vmalloc_range().  Those pages plus the
 * most TX frame pages the port may hold are charged to the opener's user
 * against RLIMIT_MEMLOCK (locked_vm, as AF_XDP charges a UMEM), unless the
 * opener has CAP_IPC_LOCK; the charge goes back when the port is freed.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/rtnetlink.h>
#include <linux/sched.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>

#include "ms_internal.h"

static atomic_t ms_port_ids = ATOMIC_INIT(0);

static size_t ms_ring_bytes(u32 slots)
{
	return PAGE_ALIGN(MS_RING_SLOTS_OFS +
			  (size_t)slots * sizeof(struct ms_netmap_slot));
}

static bool ms_slots_ok(u32 n)
{
	return n >= MS_MIN_SLOTS && n <= MS_MAX_SLOTS && is_power_of_2(n);
}

static void ms_ring_init(struct ms_netmap_ring *ring, s64 buf_ofs, u32 slots,
			 u32 buf_size, u16 dir, u32 first_buf)
{
	u32 i;

	ring->buf_ofs = buf_ofs;
	ring->num_slots = slots;
	ring->nr_buf_size = buf_size;
	ring->dir = dir;
	ring->head = 0;
	ring->cur = 0;
	ring->tail = dir == MS_RING_TX ? slots - 1 : 0;
	for (i = 0; i < slots; i++)
		ms_slot(ring, i)->buf_idx = first_buf + i;
}

/* Pages a port may hold for TX frames (ms_tx.c), charged at bind. */
#define MS_TX_PAGES_MAX		(MS_TX_PAGES << MS_TX_PAGE_ORDER)
static_assert(PAGE_SIZE != 4096 || MS_TX_PAGES_MAX * 4096 == MS_TX_MEM_MAX);

/*
 * The port's memory: charged to the memory cgroup; past its limit the
 * allocation fails (ENOMEM) rather than waking the OOM killer.
 */
#define MS_PORT_GFP	(GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

struct ms_layout {
	u32 tx, rx, bs;
	size_t tx_ofs, rx_ofs, pool_ofs, total;
};

/* Validates the request's sizes and lays the port's memory out. */
static int ms_port_layout(const struct ms_port_req *req, unsigned int mtu,
			  struct ms_layout *l)
{
	u32 min_bs = ALIGN(mtu + 18, 64);

	l->tx = req->tx_slots ?: MS_DEFAULT_SLOTS;
	l->rx = req->rx_slots ?: MS_DEFAULT_SLOTS;
	l->bs = req->buf_size;
	if (!l->bs)
		l->bs = max_t(u32, MS_DEFAULT_BUF_SIZE, min_bs);
	if (!ms_slots_ok(l->tx) || !ms_slots_ok(l->rx) || l->bs % 64 ||
	    l->bs < MS_MIN_BUF_SIZE || l->bs > MS_MAX_BUF_SIZE ||
	    l->bs < min_bs)
		return -EINVAL;

	l->tx_ofs = MS_IF_SIZE;
	l->rx_ofs = l->tx_ofs + ms_ring_bytes(l->tx);
	l->pool_ofs = l->rx_ofs + ms_ring_bytes(l->rx);
	l->total = l->pool_ofs + PAGE_ALIGN((size_t)(l->tx + l->rx) * l->bs);
	if (l->total > MS_MAX_MEM)
		return -EINVAL;
	return 0;
}

/*
 * Charges npages to the current user's locked_vm (shared with AF_XDP and
 * io_uring) against RLIMIT_MEMLOCK; CAP_IPC_LOCK is exempt.
 */
static int ms_port_charge(struct ms_port *port, unsigned long npages)
{
	struct user_struct *user = current_user();
	unsigned long limit, old, new;

	if (capable(CAP_IPC_LOCK))
		return 0;
	limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	old = atomic_long_read(&user->locked_vm);
	do {
		new = old + npages;
		if (new > limit || new < old)
			return -ENOBUFS;
	} while (!atomic_long_try_cmpxchg(&user->locked_vm, &old, new));
	port->user = get_uid(user);
	port->locked = npages;
	return 0;
}

static void ms_port_uncharge(struct ms_port *port)
{
	if (!port->user)
		return;
	atomic_long_sub(port->locked, &port->user->locked_vm);
	free_uid(port->user);
	port->user = NULL;
}

static int ms_port_alloc_pages(struct ms_port *port, size_t size)
{
	u32 n = size >> PAGE_SHIFT, i;

	port->pages = kvcalloc(n, sizeof(*port->pages), MS_PORT_GFP);
	if (!port->pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		port->pages[i] = alloc_page(MS_PORT_GFP | __GFP_ZERO);
		if (!port->pages[i])
			goto err_free;
		if (!(i % 256))
			cond_resched();
	}
	/* VM_USERMAP: remap_vmalloc_range() maps the area to user space */
	port->mem = vmap(port->pages, n, VM_MAP | VM_USERMAP, PAGE_KERNEL);
	if (!port->mem)
		goto err_free;
	port->npages = n;
	return 0;

err_free:
	while (i--)
		__free_page(port->pages[i]);
	kvfree(port->pages);
	port->pages = NULL;
	return -ENOMEM;
}

static void ms_port_free_pages(struct ms_port *port)
{
	u32 i;

	vunmap(port->mem);
	for (i = 0; i < port->npages; i++)
		__free_page(port->pages[i]);
	kvfree(port->pages);
}

/* Writes the netmap_if and ring headers into the (zeroed) area. */
static void ms_port_init_mem(struct ms_port *port, const struct ms_layout *l)
{
	port->mem_size = l->total;
	port->tx_slots = l->tx;
	port->rx_slots = l->rx;
	port->buf_size = l->bs;
	port->nbufs = l->tx + l->rx;
	port->nifp = port->mem;
	port->tx = port->mem + l->tx_ofs;
	port->rx = port->mem + l->rx_ofs;
	port->pool = port->mem + l->pool_ofs;

	ms_ring_init(port->tx, (s64)l->pool_ofs - (s64)l->tx_ofs, l->tx, l->bs,
		     MS_RING_TX, 0);
	ms_ring_init(port->rx, (s64)l->pool_ofs - (s64)l->rx_ofs, l->rx, l->bs,
		     MS_RING_RX, l->tx);
	port->nifp->ni_version = MS_ABI_VERSION;
	port->nifp->ni_tx_rings = 1;
	port->nifp->ni_rx_rings = 1;
	port->nifp->ni_mem_size = l->total;
	port->nifp->ring_ofs[0] = l->tx_ofs;
	port->nifp->ring_ofs[1] = l->rx_ofs;
	port->nifp->ni_nbufs = l->tx + l->rx;
	port->nifp->ni_buf_size = l->bs;
}

void ms_port_fill_info(struct ms_port *port, struct ms_port_req *req)
{
	strscpy(req->ifname, port->iface->name, sizeof(req->ifname));
	req->tx_slots = port->tx_slots;
	req->rx_slots = port->rx_slots;
	req->buf_size = port->buf_size;
	req->mem_size = port->mem_size;
	req->ifindex = port->iface->ifindex;
	req->port_id = port->id;
	req->flags = port->qdisc_bypass ? MS_PORT_F_QDISC_BYPASS : 0;
}

/* rtnl held: the fd is no port yet and the interface is attached. */
static int ms_port_find_rtnl(struct ms_file *mf, struct net *net,
			     const char *name, struct ms_iface **iface,
			     unsigned int *mtu)
{
	struct net_device *dev;

	ASSERT_RTNL();
	if (mf->port)
		return -EINVAL;
	dev = __dev_get_by_name(net, name);
	if (!dev)
		return -ENODEV;
	*iface = ms_iface_find_rtnl(net, name);
	if (!*iface)
		return -ENOENT;
	*mtu = READ_ONCE(dev->mtu);
	return 0;
}

int ms_port_bind(struct ms_file *mf, struct ms_port_req *req)
{
	struct net *net = current->nsproxy->net_ns;
	struct ms_iface *iface;
	struct ms_layout lay;
	struct ms_port *port;
	unsigned int mtu;
	int err;

	/* first, so that a request bound to fail allocates nothing */
	rtnl_lock();
	err = ms_port_find_rtnl(mf, net, req->ifname, &iface, &mtu);
	rtnl_unlock();
	if (err)
		return err;
	err = ms_port_layout(req, mtu, &lay);
	if (err)
		return err;

	port = kzalloc(sizeof(*port), GFP_KERNEL_ACCOUNT);
	if (!port)
		return -ENOMEM;
	port->stats = ms_stats_alloc(GFP_KERNEL_ACCOUNT);
	if (!port->stats) {
		err = -ENOMEM;
		goto err_free_port;
	}
	port->rej = ms_rej_alloc(GFP_KERNEL_ACCOUNT);
	if (!port->rej) {
		err = -ENOMEM;
		goto err_free_stats;
	}
	err = ms_port_charge(port, (lay.total >> PAGE_SHIFT) + MS_TX_PAGES_MAX);
	if (err)
		goto err_free_stats;
	/* up to MS_MAX_MEM: without rtnl, which every `ip` command needs */
	err = ms_port_alloc_pages(port, lay.total);
	if (err)
		goto err_uncharge;
	ms_port_init_mem(port, &lay);
	INIT_LIST_HEAD(&port->regs);
	INIT_LIST_HEAD(&port->node);
	mutex_init(&port->tx_mutex);
	spin_lock_init(&port->rx_lock);
	init_waitqueue_head(&port->wq);

	/*
	 * Again: the interface may have been detached, or another bind on
	 * this fd may have won, meanwhile.  An MTU changed since is like one
	 * changed after bind (TX and RX check lengths per frame).
	 */
	rtnl_lock();
	err = ms_port_find_rtnl(mf, net, req->ifname, &iface, &mtu);
	if (err)
		goto err_unlock;
	strscpy(port->nifp->ni_name, iface->name, sizeof(port->nifp->ni_name));
	kref_get(&iface->ref);
	port->iface = iface;
	port->qdisc_bypass = req->flags & MS_PORT_F_QDISC_BYPASS;
	port->id = (u32)atomic_inc_return(&ms_port_ids);
	port->pid = get_task_pid(current, PIDTYPE_TGID);
	port->uid = current_euid();
	list_add_tail(&port->node, &iface->ports);
	atomic_inc(&ms_live_ports);
	smp_store_release(&mf->port, port);
	rtnl_unlock();
	ms_port_fill_info(port, req);
	return 0;

err_unlock:
	rtnl_unlock();
	mutex_destroy(&port->tx_mutex);
	ms_port_free_pages(port);
err_uncharge:
	ms_port_uncharge(port);
err_free_stats:
	kvfree(port->rej);
	free_percpu(port->stats);
err_free_port:
	kfree(port);
	return err;
}

/* Last reference of the file is gone: no ioctl, poll or mapping remains. */
void ms_port_release(struct ms_port *port)
{
	LIST_HEAD(regs);

	rtnl_lock();
	ms_port_unhash_all(port, &regs);
	list_del(&port->node);
	rtnl_unlock();
	synchronize_net();	/* rx_handler / TX no longer see our tuples */
	ms_regs_free(&regs);
	ms_iface_put(port->iface);
	put_pid(port->pid);
	ms_port_tx_free_pages(port);	/* skbs in flight keep theirs */
	mutex_destroy(&port->tx_mutex);
	ms_port_free_pages(port);
	ms_port_uncharge(port);
	free_percpu(port->stats);
	kvfree(port->rej);
	kfree(port);
	atomic_dec(&ms_live_ports);
}

int ms_port_mmap(struct ms_port *port, struct vm_area_struct *vma)
{
	if (vma->vm_pgoff != 0 ||
	    vma->vm_end - vma->vm_start != port->mem_size ||
	    !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	return remap_vmalloc_range(vma, port->mem, 0);
}

static void ms_ring_stamp(struct ms_netmap_ring *ring)
{
	struct timespec64 ts;

	ktime_get_real_ts64(&ts);
	WRITE_ONCE(ring->ts_sec, ts.tv_sec);
	WRITE_ONCE(ring->ts_usec, ts.tv_nsec / NSEC_PER_USEC);
}

/*
 * RX sync: accept the user's head (slots before it are free again) and
 * publish every filled slot by moving tail.  Returns the number of slots
 * now owned by user space, or -EINVAL for a bogus head.
 */
static int ms_rxsync_locked(struct ms_port *port)
{
	struct ms_netmap_ring *ring = port->rx;
	u32 n = port->rx_slots;
	/* acquire: the user's reads of released buffers come first */
	u32 head = smp_load_acquire(&ring->head);

	lockdep_assert_held(&port->rx_lock);
	if (head >= n ||
	    ((head - port->rx_hwhead) & (n - 1)) >
	    ((port->rx_pubtail - port->rx_hwhead) & (n - 1)))
		return -EINVAL;
	WRITE_ONCE(port->rx_hwhead, head);
	port->rx_kicked = false;	/* the next delivery wakes us again */
	if (port->rx_pubtail != port->rx_hwtail) {
		WRITE_ONCE(port->rx_pubtail, port->rx_hwtail);
		/* slot contents before the index */
		smp_store_release(&ring->tail, port->rx_pubtail);
	}
	return (port->rx_pubtail - head) & (n - 1);
}

/*
 * RX sync without rx_lock when it would change nothing: no delivery since
 * the last sync (rx_hwtail still equals rx_pubtail, so rx_kicked is clear:
 * a delivery sets it as it moves rx_hwtail) and no slot released (head
 * unmoved).  A busy-polling reader then does not contend with the softirq
 * that fills the ring.  Returns the slots the user owns, or -EAGAIN when
 * the locked sync must run.
 */
static int ms_rxsync_idle(struct ms_port *port, bool polling)
{
	u32 n = port->rx_slots;
	u32 head, pubtail;

	/*
	 * After poll_wait(): orders it before the reads below; pairs with
	 * wq_has_sleeper() after a delivery, so that a frame is either seen
	 * here or its wakeup reaches the waiter.
	 */
	if (polling)
		smp_mb();
	pubtail = READ_ONCE(port->rx_pubtail);
	if (READ_ONCE(port->rx_hwtail) != pubtail)
		return -EAGAIN;
	head = READ_ONCE(port->rx->head);
	if (head != READ_ONCE(port->rx_hwhead))
		return -EAGAIN;
	return (pubtail - head) & (n - 1);
}

static int ms_rxsync_any(struct ms_port *port, bool polling)
{
	int ret = ms_rxsync_idle(port, polling);

	if (ret != -EAGAIN)
		return ret;
	spin_lock_bh(&port->rx_lock);
	ret = ms_rxsync_locked(port);
	spin_unlock_bh(&port->rx_lock);
	return ret;
}

int ms_port_rxsync(struct ms_port *port)
{
	int ret;

	if (READ_ONCE(port->dead))
		return -ENXIO;
	ret = ms_rxsync_any(port, false);
	if (ret >= 0)
		ms_ring_stamp(port->rx);
	return ret < 0 ? ret : 0;
}

__poll_t ms_port_poll_mask(struct ms_port *port, __poll_t events)
{
	__poll_t mask = 0;
	int avail;

	if (READ_ONCE(port->dead))
		return EPOLLERR;
	if (events & (EPOLLIN | EPOLLRDNORM)) {
		avail = ms_rxsync_any(port, true);
		if (avail < 0)
			return EPOLLERR;
		if (avail > 0)
			mask |= EPOLLIN | EPOLLRDNORM;
	}
	if (events & (EPOLLOUT | EPOLLWRNORM)) {
		/* sending is synchronous: after a TX sync the ring is free */
		if (ms_port_txsync(port) == -EINVAL)
			return EPOLLERR;
		mask |= EPOLLOUT | EPOLLWRNORM;
	}
	return mask;
}
