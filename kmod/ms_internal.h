/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ms_internal.h - shared definitions of multistack.ko.
 *
 * Objects
 *   ms_iface  one per attached net_device.  Lives on ms_ifaces while
 *             attached; reference counted (kref) by the list and by every
 *             port bound to it.  Owns the registrations' hash table (an
 *             rhashtable: RCU lookups, resized as registrations come and
 *             go, so a lookup costs the same for one tuple or 65,536) and
 *             the per-CPU interface counters.
 *   ms_port   one per /dev/multistack fd bound with MS_IOC_PORT_BIND.  Owns
 *             the shared memory (pages charged to the opener's memory
 *             cgroup, vmapped), the rings' kernel-side indices and its
 *             registrations; holds a reference on the opener's user_struct
 *             while its pages are charged to that user's locked_vm
 *             (RLIMIT_MEMLOCK).  Freed in release() (last reference of the
 *             file, so after every munmap); the charge goes back then.
 *   ms_reg    one registered 3-tuple: in the iface hash table (RCU) and on
 *             its port's list; holds a reference on the proving socket's
 *             file until it is removed.  Owns its tuple only while that
 *             socket holds the tuple's binding alone (ms_table.c).
 *
 * Locking rules (outermost first)
 *   rtnl_lock     every control-path mutation: ms_ifaces, iface->ports,
 *                 port->regs, hash-table writers, iface->dev publication,
 *                 port->dead.  Taken by the ioctls (process context), by
 *                 release(), by /proc readers; held by the netdevice
 *                 notifier.  Never held while a port's memory is charged,
 *                 allocated or freed (up to MS_MAX_MEM: bind does that
 *                 between two short rtnl sections, release after its one).
 *   port->tx_mutex  serialises TX sync (ioctl / poll, process context);
 *                 guards tx_hwcur and tx_pages (except tx_pages.bytes,
 *                 which /proc reads with READ_ONCE, without the mutex).
 *                 Inside TX sync, the TX queue lock of the device (qdisc
 *                 bypass) nests within it, with BH disabled.
 *   port->rx_lock   spinlock (BH) protecting the RX ring's kernel indices
 *                 (rx_hwtail, rx_hwhead, rx_pubtail) and the RX
 *                 slots/buffers writes; taken by the rx_handler (softirq)
 *                 and by RX sync/poll.  An RX sync that would change
 *                 nothing reads those three with READ_ONCE and skips it.
 *   rej->lock     spinlock_t, innermost: guards a port's ring of rejected
 *                 TX frames (ms_rej.c).  Taken by TX sync (within
 *                 tx_mutex, with or without BH disabled and RCU held) and
 *                 by MS_IOC_REJECTS (within rtnl); never from softirq, so
 *                 without _bh.  Under PREEMPT_RT it sleeps, which both
 *                 those sections allow there.
 *   RCU           the rx_handler (softirq, inside rcu_read_lock from the
 *                 core) and TX validation read the hash table and
 *                 iface->dev locklessly.  Writers (under rtnl) remove
 *                 with rhashtable_remove_fast and free only after
 *                 synchronize_net().  The rhashtable's own bucket locks
 *                 and resize mutex nest inside rtnl.
 *   Counters are per-CPU u64_stats_t with a u64_stats_sync, updated by
 *   ms_stat_add (any context), summed by readers with the fetch/retry
 *   loop (ms_stats_sum).
 */
#ifndef MS_INTERNAL_H
#define MS_INTERNAL_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/percpu.h>
#include <linux/u64_stats_sync.h>
#include <linux/netdevice.h>
#include <linux/rcupdate.h>
#include <linux/rhashtable-types.h>
#include <linux/pid.h>
#include <linux/uidgid.h>

#include "include/uapi/multistack.h"


struct ms_pcpu_stats {
	u64_stats_t c[MS_STAT_MAX];
	struct u64_stats_sync syncp;
};

/* hash key: 5 aligned u32 words for jhash2 */
struct ms_key {
	u8 addr[16];
	u8 family;
	u8 proto;
	u16 port;		/* host order */
} __aligned(4);

struct ms_iface {
	struct list_head node;			/* ms_ifaces, rtnl */
	struct kref ref;
	struct net_device __rcu *dev;		/* NULL once detached */
	struct net_device *dev_held;		/* for dev_put, rtnl */
	netdevice_tracker dev_tracker;
	struct net *net;			/* no reference; valid while
						 * attached */
	int ifindex;
	char name[IFNAMSIZ];
	bool attached;				/* rtnl */
	struct list_head ports;			/* rtnl */
	struct ms_pcpu_stats __percpu *stats;
	struct rhashtable table;		/* ms_reg by key; RCU, writers
						 * rtnl */
	int nwild;				/* wildcard registrations;
						 * rtnl writes, the packet
						 * paths READ_ONCE it */
};

/* pages TX skbs are carved from (ms_tx.c), recycled per port */
#define MS_TX_PAGES		4
#define MS_TX_PAGE_ORDER	3
struct ms_tx_pages {
	struct page *page[MS_TX_PAGES];
	u32 cur;			/* page being carved */
	u32 offset;			/* next free byte in it */
	u32 bytes;			/* size of the pages held; written
					 * under tx_mutex (WRITE_ONCE), read
					 * locklessly by /proc (READ_ONCE) */
};

/* the last rejected TX frames of a port (ms_rej.c) */
struct ms_rej_ring {
	spinlock_t lock;
	u64 total;				/* recorded since bind */
	struct ms_rej_entry e[MS_REJ_RING];	/* [total % MS_REJ_RING] next */
};

struct ms_port {
	struct ms_iface *iface;			/* holds a kref */
	struct list_head node;			/* iface->ports, rtnl */
	struct list_head regs;			/* ms_reg.pnode, rtnl */
	u32 nregs;				/* rtnl */
	u32 id;
	struct pid *pid;
	kuid_t uid;				/* opener's euid, for /proc */
	bool dead;				/* WRITE_ONCE under rtnl */

	void *mem;				/* vmap of pages[] */
	struct page **pages;
	u32 npages;
	u32 mem_size;
	struct user_struct *user;		/* charged, or NULL when the
						 * opener had CAP_IPC_LOCK */
	unsigned long locked;			/* pages charged to user */
	u32 tx_slots, rx_slots, buf_size, nbufs;
	struct ms_netmap_if *nifp;
	struct ms_netmap_ring *tx;
	struct ms_netmap_ring *rx;
	u8 *pool;

	struct mutex tx_mutex;
	u32 tx_hwcur;				/* tx_mutex */
	struct ms_tx_pages tx_pages;		/* tx_mutex: TX skb data */
	bool qdisc_bypass;			/* MS_PORT_F_QDISC_BYPASS, set
						 * at bind */

	spinlock_t rx_lock;
	u32 rx_hwtail;				/* next slot to fill */
	u32 rx_hwhead;				/* user head seen at last sync */
	u32 rx_pubtail;				/* tail published to the user */
	bool rx_kicked;				/* woken since the last sync */

	wait_queue_head_t wq;
	struct ms_pcpu_stats __percpu *stats;
	struct ms_rej_ring *rej;		/* rejected TX frames */
};

struct ms_reg {
	struct rhash_head hnode;		/* iface->table, RCU */
	struct list_head pnode;			/* port->regs, rtnl */
	struct ms_key key;
	struct ms_port *port;
	struct sock *sk;			/* the proof: alive while */
	struct file *sock_file;			/* this reference is held */
};

/* per-file state: the port, published once under rtnl */
struct ms_file {
	struct ms_port *port;
};

extern struct list_head ms_ifaces;
/* live object counts, checked at module exit (leak detector) */
extern atomic_t ms_live_ifaces, ms_live_ports, ms_live_regs;

/* The key of a classified tuple (addr: 16 bytes, IPv4 in the first 4). */
static inline void ms_key_fill(struct ms_key *key, u8 family, u8 proto,
			       const u8 *addr, u16 port)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->addr, addr, sizeof(key->addr));
	key->family = family;
	key->proto = proto;
	key->port = port;
}

static inline struct ms_netmap_slot *ms_slot(struct ms_netmap_ring *r,
					     u32 i)
{
	return (struct ms_netmap_slot *)((u8 *)r + MS_RING_SLOTS_OFS) + i;
}

/*
 * Any context.  RX (softirq) may interrupt a TX flush (process context) on
 * the same CPU: the irqsave section keeps the 32-bit seqcount whole; on
 * 64-bit it costs nothing and the add is one local64 instruction.
 */
static inline void ms_stat_add(struct ms_pcpu_stats __percpu *s, int idx,
			       u64 v)
{
	struct ms_pcpu_stats *p = get_cpu_ptr(s);
	unsigned long flags = u64_stats_update_begin_irqsave(&p->syncp);

	u64_stats_add(&p->c[idx], v);
	u64_stats_update_end_irqrestore(&p->syncp, flags);
	put_cpu_ptr(s);
}

static inline void ms_stat_inc(struct ms_pcpu_stats __percpu *s, int idx)
{
	ms_stat_add(s, idx, 1);
}

/* ms_iface.c */
int ms_iface_attach(struct ms_if_req *req);
int ms_iface_detach(struct ms_if_req *req);
void ms_iface_put(struct ms_iface *iface);
struct ms_iface *ms_iface_find_rtnl(struct net *net, const char *name);
int ms_iface_init(void);
void ms_iface_exit(void);

/* ms_port.c */
int ms_port_bind(struct ms_file *mf, struct ms_port_req *req);
void ms_port_release(struct ms_port *port);
void ms_port_fill_info(struct ms_port *port, struct ms_port_req *req);
int ms_port_mmap(struct ms_port *port, struct vm_area_struct *vma);
int ms_port_rxsync(struct ms_port *port);
__poll_t ms_port_poll_mask(struct ms_port *port, __poll_t events);

/* ms_table.c */
int ms_table_init(struct ms_iface *iface);
void ms_table_destroy(struct ms_iface *iface);
struct ms_reg *ms_table_lookup(struct ms_iface *iface,
			       const struct ms_key *key);
struct ms_reg *ms_table_owner(struct ms_iface *iface, struct net_device *dev,
			      const struct ms_key *key);
bool ms_reg_proof_held(const struct ms_reg *reg);
int ms_register(struct ms_port *port, const struct ms_reg_req *req);
int ms_unregister(struct ms_port *port, const struct ms_reg_req *req);
void ms_port_unhash_all(struct ms_port *port, struct list_head *out);
void ms_regs_free(struct list_head *list);

/* ms_rx.c */
rx_handler_result_t ms_rx_handler(struct sk_buff **pskb);

/* ms_tx.c */
int ms_port_txsync(struct ms_port *port);
void ms_port_tx_free_pages(struct ms_port *port);

/* ms_rej.c */
struct ms_rej_ring *ms_rej_alloc(gfp_t gfp);
void ms_rej_record(struct ms_rej_ring *ring, int reason, u32 len,
		   const void *data, u32 caplen);
int ms_rej_ioctl(struct file *file, struct ms_rej_req *req);

/* ms_stats.c */
struct ms_pcpu_stats __percpu *ms_stats_alloc(gfp_t gfp);
void ms_stats_sum(struct ms_pcpu_stats __percpu *s, u64 *out);
int ms_stats_ioctl(struct ms_file *mf, struct ms_stats *st);
int ms_proc_init_net(struct net *net);
void ms_proc_exit_net(struct net *net);

#endif /* MS_INTERNAL_H */
