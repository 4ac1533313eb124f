// SPDX-License-Identifier: GPL-2.0
/*
 * ms_table.c - the per-interface table of registered 3-tuples (an
 * rhashtable) and the register / unregister ioctls (proof of ownership by
 * socket).
 *
 * Context and locking (see ms_internal.h):
 *   ms_table_lookup,   any context: inside rcu_read_lock (softirq RX path,
 *   ms_table_owner,    TX sync) or with rtnl held.
 *   ms_reg_proof_held
 *   ms_register, ms_unregister  process context; take rtnl.
 *   ms_port_unhash_all rtnl held; moves the port's registrations to `out`
 *                      out of the table; the caller must wait for a
 *                      grace period (synchronize_net) and then call
 *                      ms_regs_free (process context, may fput).
 *   ms_table_init,     process context: attach, and the iface's last
 *   ms_table_destroy   reference (the table is empty by then: every port
 *                      took its registrations out when it died).
 *
 * The table is keyed by (family, proto, addr, port); the rhashtable hashes
 * with jhash2 and a random seed of its own, and grows and shrinks with the
 * number of registrations (in a worker, lookups going on meanwhile), so
 * the RX and TX paths pay the same per frame for one registration or for
 * 65,536.  Keys are unique: a stale registration is replaced in place.
 * An all-zero address is a wildcard
 * registration: the port owns (proto, port) on every address configured on
 * the interface, now or later, except where a registration of that exact
 * address exists (the specific one wins, as in the OS's socket lookup).
 *
 * A registration lives no longer than its proof's binding.  The OS lets a
 * socket give its port back while it lives (disconnect of an auto-bound
 * socket), narrow a wildcard binding (connect) or share it (SO_REUSEADDR),
 * and tells nobody: so ms_table_owner checks the proving socket on every
 * lookup (ms_proof_check, a few loads from sock_common), a registration
 * whose proof no longer holds its tuple alone owns nothing, and a new
 * registration of the same tuple replaces it.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/rhashtable.h>
#include <linux/net.h>
#include <linux/file.h>
#include <linux/inetdevice.h>
#include <linux/rtnetlink.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/addrconf.h>

#include "ms_internal.h"

static const struct rhashtable_params ms_table_params = {
	.key_len = sizeof(struct ms_key),
	.key_offset = offsetof(struct ms_reg, key),
	.head_offset = offsetof(struct ms_reg, hnode),
	.automatic_shrinking = true,
};

int ms_table_init(struct ms_iface *iface)
{
	return rhashtable_init(&iface->table, &ms_table_params);
}

void ms_table_destroy(struct ms_iface *iface)
{
	WARN_ON_ONCE(atomic_read(&iface->table.nelems));
	rhashtable_destroy(&iface->table);
}

static bool ms_key_is_wild(const struct ms_key *key)
{
	return !memchr_inv(key->addr, 0, sizeof(key->addr));
}

/*
 * 0 if sk holds key's tuple, and holds it alone: bound to key's port, on
 * key's address or the wildcard (only the wildcard for a wildcard key),
 * and not shared with SO_REUSEADDR, which lets a socket of any user bind
 * the same tuple (a listening TCP socket keeps its port alone even so).
 * -EACCES or -EPERM otherwise.  Any context: lockless reads of fields the
 * socket's owner changes under lock_sock; a stale answer lasts no longer
 * than the change in flight.
 */
static int ms_proof_check(const struct sock *sk, const struct ms_key *key)
{
	/* a wildcard key's address is all zeros: no bound address equals it */
	if (READ_ONCE(sk->sk_num) != key->port)
		return -EACCES;
	if (key->family == MS_FAMILY_INET) {
		__be32 bound = READ_ONCE(sk->sk_rcv_saddr);

		if (bound != htonl(INADDR_ANY) && memcmp(&bound, key->addr, 4))
			return -EACCES;
	} else {
		struct in6_addr bound = sk->sk_v6_rcv_saddr;

		if (!ipv6_addr_any(&bound) && memcmp(&bound, key->addr, 16))
			return -EACCES;
	}
	if (sk->sk_reuse != SK_NO_REUSE &&
	    !(key->proto == MS_PROTO_TCP &&
	      READ_ONCE(sk->sk_state) == TCP_LISTEN))
		return -EPERM;
	return 0;
}

bool ms_reg_proof_held(const struct ms_reg *reg)
{
	return !ms_proof_check(reg->sk, &reg->key);
}

struct ms_reg *ms_table_lookup(struct ms_iface *iface,
			       const struct ms_key *key)
{
	/* _fast takes rcu_read_lock itself, for the writers under rtnl;
	 * nested in the packet paths' own, it costs a counter */
	return rhashtable_lookup_fast(&iface->table, key, ms_table_params);
}

/* Is the address configured on dev?  Any context: takes rcu_read_lock. */
static bool ms_addr_on_dev(struct net_device *dev, u8 family, const u8 *addr)
{
	const struct in_ifaddr *ifa;
	struct in_device *in_dev;
	bool found = false;
	__be32 a;

	if (family == MS_FAMILY_INET6)
		return ipv6_chk_addr(dev_net(dev), (const struct in6_addr *)addr,
				     dev, 1);
	memcpy(&a, addr, 4);
	rcu_read_lock();
	in_dev = __in_dev_get_rcu(dev);
	if (in_dev) {
		in_dev_for_each_ifa_rcu(ifa, in_dev) {
			if (ifa->ifa_local == a) {
				found = true;
				break;
			}
		}
	}
	rcu_read_unlock();
	return found;
}

/*
 * The registration owning key's tuple on dev: the exact one, else the
 * wildcard of its protocol and port if key's address is configured on dev;
 * in both cases only while its proof holds the tuple (ms_proof_check).
 * Same context as ms_table_lookup.
 */
struct ms_reg *ms_table_owner(struct ms_iface *iface, struct net_device *dev,
			      const struct ms_key *key)
{
	struct ms_reg *reg;
	struct ms_key wild;

	reg = ms_table_lookup(iface, key);
	if (reg) {
		if (ms_key_is_wild(key))	/* no frame is to or from it */
			return NULL;
		if (ms_reg_proof_held(reg))
			return reg;
	}
	if (!READ_ONCE(iface->nwild))
		return NULL;
	wild = *key;
	memset(wild.addr, 0, sizeof(wild.addr));
	reg = ms_table_lookup(iface, &wild);
	if (!reg || !ms_reg_proof_held(reg) ||
	    !ms_addr_on_dev(dev, key->family, key->addr))
		return NULL;
	return reg;
}


/* rtnl held: a wildcard registration entered or left the table */
static void ms_count_wild(struct ms_iface *iface, const struct ms_key *key,
			  int delta)
{
	if (ms_key_is_wild(key))
		WRITE_ONCE(iface->nwild, iface->nwild + delta);
}

/* Checks and converts a request's tuple; 0 or a negative errno. */
static int ms_req_key(const struct ms_reg_req *req, struct ms_key *key)
{
	memset(key, 0, sizeof(*key));
	if (req->family != MS_FAMILY_INET && req->family != MS_FAMILY_INET6)
		return -EAFNOSUPPORT;
	if (req->proto != MS_PROTO_TCP && req->proto != MS_PROTO_UDP)
		return -EPROTONOSUPPORT;
	if (!req->port)
		return -EINVAL;
	if (req->family == MS_FAMILY_INET) {
		__be32 a;

		if (memchr_inv(req->addr + 4, 0, 12))
			return -EINVAL;
		memcpy(&a, req->addr, 4);
		if (ipv4_is_multicast(a) || ipv4_is_lbcast(a))
			return -EINVAL;
	} else {
		struct in6_addr a;
		int t;

		memcpy(&a, req->addr, 16);
		t = ipv6_addr_type(&a);
		if ((t & IPV6_ADDR_MULTICAST) || (t & IPV6_ADDR_MAPPED))
			return -EINVAL;
	}
	memcpy(key->addr, req->addr, 16);
	key->family = req->family;
	key->proto = req->proto;
	key->port = req->port;
	return 0;
}

/*
 * Is the socket of the request's kind, in net, and holding key's tuple
 * alone (ms_proof_check)?  0, -EPROTOTYPE, -EACCES or -EPERM.
 */
static int ms_check_socket(struct socket *sock, const struct ms_key *key,
			   struct net *net)
{
	struct sock *sk = sock->sk;
	int type = key->proto == MS_PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;

	if (!sk || sk->sk_family != key->family || sock->type != type ||
	    sk->sk_protocol != key->proto)
		return -EPROTOTYPE;
	if (!net_eq(sock_net(sk), net))
		return -EACCES;
	return ms_proof_check(sk, key);
}

/* rtnl held: reg has left the table; take it off its port's list.  The
 * caller frees it with ms_regs_free after a grace period. */
static void ms_reg_unlink(struct ms_reg *reg, struct list_head *out)
{
	ms_count_wild(reg->port->iface, &reg->key, -1);
	list_move_tail(&reg->pnode, out);
	reg->port->nregs--;
}

/* rtnl held: take reg out of the table and off its port's list */
static void ms_reg_unhash(struct ms_reg *reg, struct list_head *out)
{
	/* cannot fail: reg is in the table, and only rtnl holders remove */
	WARN_ON_ONCE(rhashtable_remove_fast(&reg->port->iface->table,
					    &reg->hnode, ms_table_params));
	ms_reg_unlink(reg, out);
}

int ms_register(struct ms_port *port, const struct ms_reg_req *req)
{
	struct ms_iface *iface = port->iface;
	struct net_device *dev;
	struct ms_reg *reg, *old;
	struct socket *sock;
	LIST_HEAD(released);
	struct ms_key key;
	int err;

	err = ms_req_key(req, &key);
	if (err)
		return err;
	sock = sockfd_lookup(req->sockfd, &err);
	if (!sock)
		return err;		/* -EBADF or -ENOTSOCK */
	reg = kzalloc(sizeof(*reg), GFP_KERNEL);
	if (!reg) {
		err = -ENOMEM;
		goto err_put_sock;
	}

	rtnl_lock();
	dev = rtnl_dereference(iface->dev);
	if (READ_ONCE(port->dead) || !dev) {
		err = -ENXIO;
		goto err_unlock;
	}
	err = ms_check_socket(sock, &key, dev_net(dev));
	if (err)
		goto err_unlock;
	if (!ms_key_is_wild(&key) &&
	    !ms_addr_on_dev(dev, key.family, key.addr)) {
		err = -EADDRNOTAVAIL;
		goto err_unlock;
	}
	old = ms_table_lookup(iface, &key);
	if (old && ms_reg_proof_held(old)) {
		err = -EADDRINUSE;
		goto err_unlock;
	}
	if (port->nregs >= MS_MAX_REGS && !(old && old->port == port)) {
		err = -ENOSPC;
		goto err_unlock;
	}
	reg->key = key;
	reg->port = port;
	reg->sk = sock->sk;
	reg->sock_file = sock->file;	/* keeps sockfd_lookup's reference */
	/* old's proof let the tuple go: it owns nothing, reg takes its place */
	if (old)
		err = rhashtable_replace_fast(&iface->table, &old->hnode,
					      &reg->hnode, ms_table_params);
	else
		err = rhashtable_insert_fast(&iface->table, &reg->hnode,
					     ms_table_params);
	if (err)		/* -ENOMEM, or -E2BIG at the table's limit */
		goto err_unlock;
	if (old)
		ms_reg_unlink(old, &released);
	list_add_tail(&reg->pnode, &port->regs);
	port->nregs++;
	atomic_inc(&ms_live_regs);
	ms_count_wild(iface, &key, 1);
	rtnl_unlock();
	if (old) {
		synchronize_net();
		ms_regs_free(&released);
	}
	return 0;

err_unlock:
	rtnl_unlock();
	kfree(reg);
err_put_sock:
	sockfd_put(sock);
	return err;
}

int ms_unregister(struct ms_port *port, const struct ms_reg_req *req)
{
	struct ms_reg *reg;
	LIST_HEAD(released);
	struct ms_key key;
	int err;

	err = ms_req_key(req, &key);
	if (err)
		return err;
	rtnl_lock();
	if (READ_ONCE(port->dead)) {
		rtnl_unlock();
		return -ENXIO;
	}
	reg = ms_table_lookup(port->iface, &key);
	if (!reg || reg->port != port) {
		rtnl_unlock();
		return -ENOENT;
	}
	ms_reg_unhash(reg, &released);
	rtnl_unlock();
	synchronize_net();
	ms_regs_free(&released);
	return 0;
}

void ms_port_unhash_all(struct ms_port *port, struct list_head *out)
{
	struct ms_reg *reg, *tmp;

	ASSERT_RTNL();
	list_for_each_entry_safe(reg, tmp, &port->regs, pnode)
		ms_reg_unhash(reg, out);
}

void ms_regs_free(struct list_head *list)
{
	struct ms_reg *reg, *tmp;

	list_for_each_entry_safe(reg, tmp, list, pnode) {
		list_del(&reg->pnode);
		fput(reg->sock_file);
		kfree(reg);
		atomic_dec(&ms_live_regs);
	}
}
