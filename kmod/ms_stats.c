// SPDX-License-Identifier: GPL-2.0
/*
 * ms_stats.c - counters: MS_IOC_STATS and /proc/net/multistack.
 *
 * Context: process context.  Both readers take rtnl, so the interface list,
 * the ports and their registrations are stable while printed.  Per-CPU
 * counters are summed without locking (each is a naturally atomic u64 on
 * 64-bit; a reader may see a sum that misses in-flight increments).  A
 * port's TX page bytes (txmem) are read with READ_ONCE, without tx_mutex,
 * so a TX sync is never waited for.
 *
 * /proc/net/multistack (one file per network namespace, lists only that
 * namespace's interfaces) is line oriented, space separated:
 *   iface <name> ifindex <n> ports <k> <counter> <value> ...
 *   port <id> iface <name> pid <pid> tx_slots <n> rx_slots <n>
 *        buf_size <n> mem <bytes> txmem <bytes> regs <n> dead <0|1>
 *        <counter> <value> ...
 *   reg <port id> <inet|inet6> <tcp|udp> <address> <port>
 * mem is the port's mmap size; txmem the bytes of kernel-private pages it
 * holds for TX frames (ms_tx.c): 0 before its first send, at most
 * MS_TX_PAGES pages of order MS_TX_PAGE_ORDER.
 * Counter names are the MS_STAT_* names in lower case without the prefix.
 */
#include <linux/kernel.h>
#include <linux/seq_file.h>
#include <linux/proc_fs.h>
#include <linux/rtnetlink.h>
#include <linux/pid.h>
#include <net/net_namespace.h>

#include "ms_internal.h"

static const char *const ms_stat_names[MS_STAT_MAX] = {
	[MS_STAT_RX_DELIVERED]		= "rx_delivered",
	[MS_STAT_RX_BYTES]		= "rx_bytes",
	[MS_STAT_RX_PASSED]		= "rx_passed",
	[MS_STAT_RX_DROP_FULL]		= "rx_drop_full",
	[MS_STAT_RX_DROP_SIZE]		= "rx_drop_size",
	[MS_STAT_RX_MALFORMED]		= "rx_malformed",
	[MS_STAT_RX_FRAGMENT]		= "rx_fragment",
	[MS_STAT_RX_VLAN]		= "rx_vlan",
	[MS_STAT_TX_SENT]		= "tx_sent",
	[MS_STAT_TX_BYTES]		= "tx_bytes",
	[MS_STAT_TX_REJ_NOT_OWNED]	= "tx_rej_not_owned",
	[MS_STAT_TX_REJ_OTHER_PORT]	= "tx_rej_other_port",
	[MS_STAT_TX_REJ_BAD_MAC]	= "tx_rej_bad_mac",
	[MS_STAT_TX_REJ_MALFORMED]	= "tx_rej_malformed",
	[MS_STAT_TX_REJ_RUNT]		= "tx_rej_runt",
	[MS_STAT_TX_REJ_OVERSIZE]	= "tx_rej_oversize",
	[MS_STAT_TX_REJ_BAD_SLOT]	= "tx_rej_bad_slot",
	[MS_STAT_TX_REJ_FRAGMENT]	= "tx_rej_fragment",
	[MS_STAT_TX_ERROR]		= "tx_error",
	[MS_STAT_RX_NOT_IP]		= "rx_not_ip",
	[MS_STAT_RX_DROP_BAD_SLOT]	= "rx_drop_bad_slot",
	[MS_STAT_TX_BYPASS_FALLBACK]	= "tx_bypass_fallback",
	[MS_STAT_RX_ICMP_DELIVERED]	= "rx_icmp_delivered",
};

void ms_stats_sum(struct ms_pcpu_stats __percpu *s, u64 *out)
{
	int cpu, i;

	memset(out, 0, sizeof(u64) * MS_STAT_MAX);
	for_each_possible_cpu(cpu) {
		const struct ms_pcpu_stats *p = per_cpu_ptr(s, cpu);

		for (i = 0; i < MS_STAT_MAX; i++)
			out[i] += READ_ONCE(p->c[i]);
	}
}

int ms_stats_ioctl(struct ms_file *mf, struct ms_stats *st)
{
	struct ms_port *port = smp_load_acquire(&mf->port);
	struct ms_iface *iface;
	int err = 0;

	if (st->version != MS_ABI_VERSION || st->flags ||
	    memchr_inv(st->reserved, 0, sizeof(st->reserved)) ||
	    strnlen(st->ifname, MS_IFNAMSIZ) >= MS_IFNAMSIZ)
		return -EINVAL;
	memset(st->port, 0, sizeof(st->port));
	memset(st->iface, 0, sizeof(st->iface));
	if (port) {
		if (st->ifname[0])
			return -EINVAL;
		ms_stats_sum(port->stats, st->port);
		ms_stats_sum(port->iface->stats, st->iface);
		return 0;
	}
	if (!st->ifname[0])
		return -EINVAL;
	rtnl_lock();
	if (!__dev_get_by_name(current->nsproxy->net_ns, st->ifname)) {
		err = -ENODEV;
		goto out;
	}
	iface = ms_iface_find_rtnl(current->nsproxy->net_ns, st->ifname);
	if (!iface) {
		err = -ENOENT;
		goto out;
	}
	ms_stats_sum(iface->stats, st->iface);
out:
	rtnl_unlock();
	return err;
}

static void ms_seq_counters(struct seq_file *seq,
			    struct ms_pcpu_stats __percpu *s)
{
	u64 c[MS_STAT_MAX];
	int i;

	ms_stats_sum(s, c);
	for (i = 0; i < MS_STAT_MAX; i++)
		if (ms_stat_names[i])
			seq_printf(seq, " %s %llu", ms_stat_names[i], c[i]);
	seq_putc(seq, '\n');
}

static void ms_seq_reg(struct seq_file *seq, const struct ms_port *port,
		       const struct ms_reg *reg)
{
	const char *proto = reg->key.proto == MS_PROTO_TCP ? "tcp" : "udp";

	if (reg->key.family == MS_FAMILY_INET)
		seq_printf(seq, "reg %u inet %s %pI4 %u\n", port->id, proto,
			   reg->key.addr, reg->key.port);
	else
		seq_printf(seq, "reg %u inet6 %s %pI6c %u\n", port->id, proto,
			   reg->key.addr, reg->key.port);
}

static int ms_proc_show(struct seq_file *seq, void *v)
{
	struct net *net = seq_file_single_net(seq);
	struct ms_iface *iface;
	struct ms_port *port;
	struct ms_reg *reg;

	rtnl_lock();
	list_for_each_entry(iface, &ms_ifaces, node) {
		struct net_device *dev = rtnl_dereference(iface->dev);
		const char *name = dev ? dev->name : iface->name;
		u32 nports = 0;

		if (!net_eq(iface->net, net))
			continue;
		list_for_each_entry(port, &iface->ports, node)
			nports++;
		seq_printf(seq, "iface %s ifindex %d ports %u", name,
			   iface->ifindex, nports);
		ms_seq_counters(seq, iface->stats);
		list_for_each_entry(port, &iface->ports, node) {
			seq_printf(seq,
				   "port %u iface %s pid %d tx_slots %u rx_slots %u buf_size %u mem %u txmem %u regs %u dead %d",
				   port->id, name, pid_vnr(port->pid),
				   port->tx_slots, port->rx_slots,
				   port->buf_size, port->mem_size,
				   READ_ONCE(port->tx_pages.bytes), port->nregs,
				   READ_ONCE(port->dead) ? 1 : 0);
			ms_seq_counters(seq, port->stats);
			list_for_each_entry(reg, &port->regs, pnode)
				ms_seq_reg(seq, port, reg);
		}
	}
	rtnl_unlock();
	return 0;
}

int ms_proc_init_net(struct net *net)
{
	if (!proc_create_net_single("multistack", 0444, net->proc_net,
				    ms_proc_show, NULL))
		return -ENOMEM;
	return 0;
}

void ms_proc_exit_net(struct net *net)
{
	remove_proc_entry("multistack", net->proc_net);
}
