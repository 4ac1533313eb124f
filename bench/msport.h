/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * msport.h - a MultiStack port opened straight from the ABI header
 * (kmod/include/uapi/multistack.h): bind, mmap, register, statistics.
 * The rings are used through kmod/include/uapi/multistack_user.h.
 */
#ifndef BENCH_MSPORT_H
#define BENCH_MSPORT_H

#include "common.h"

#include <poll.h>
#include <sys/mman.h>
#include <linux/types.h>
#include "uapi/multistack_user.h"

struct msport {
	int fd;
	void *mem;
	struct ms_port_req info;
	struct ms_netmap_if *nifp;
	struct ms_netmap_ring *tx, *rx;
};

/*
 * Opens /dev/multistack and binds a port on ifname with the MS_PORT_F_*
 * options in flags.  Returns -errno.
 */
static inline int msport_open_flags(struct msport *p, const char *ifname,
				    uint32_t slots, uint32_t flags)
{
	memset(p, 0, sizeof(*p));
	p->fd = open(MS_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (p->fd < 0)
		return -errno;
	p->info.version = MS_ABI_VERSION;
	p->info.flags = flags;
	snprintf(p->info.ifname, sizeof(p->info.ifname), "%s", ifname);
	p->info.tx_slots = slots;
	p->info.rx_slots = slots;
	if (ioctl(p->fd, MS_IOC_PORT_BIND, &p->info))
		goto err;
	p->mem = mmap(NULL, p->info.mem_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, p->fd, 0);
	if (p->mem == MAP_FAILED)
		goto err;
	p->nifp = ms_mem_if(p->mem);
	p->tx = ms_tx_ring(p->nifp);
	p->rx = ms_rx_ring(p->nifp);
	return 0;
err:
	{
		int e = errno;

		close(p->fd);
		p->fd = -1;
		return -e;
	}
}

/* Opens /dev/multistack and binds a port on ifname.  Returns -errno. */
static inline int msport_open(struct msport *p, const char *ifname,
			      uint32_t slots)
{
	return msport_open_flags(p, ifname, slots, 0);
}

/*
 * Creates a socket bound to addr:port (proto "udp" or "tcp"), registers
 * the 3-tuple with it and returns the socket (kept open by the caller), or
 * -errno.  No SO_REUSEADDR: a shared binding is no proof (EPERM).
 */
static inline int msport_claim(struct msport *p, int udp, const char *addr,
			       uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };
	struct ms_reg_req r;
	int s;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -EINVAL;
	s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)))
		goto err;
	memset(&r, 0, sizeof(r));
	r.version = MS_ABI_VERSION;
	r.family = MS_FAMILY_INET;
	r.proto = udp ? MS_PROTO_UDP : MS_PROTO_TCP;
	r.port = port;
	r.sockfd = s;
	memcpy(r.addr, &sin.sin_addr, 4);
	if (ioctl(p->fd, MS_IOC_REGISTER, &r))
		goto err;
	return s;
err:
	{
		int e = errno;

		close(s);
		return -e;
	}
}

static inline int msport_stats(struct msport *p, struct ms_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->version = MS_ABI_VERSION;
	return ioctl(p->fd, MS_IOC_STATS, st) ? -errno : 0;
}

#endif /* BENCH_MSPORT_H */
