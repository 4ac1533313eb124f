// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl_fuzz - random ioctl / mmap / ring-index abuse of /dev/multistack,
 * run as root inside the VM in netns "msa" with "va" attached (see
 * vmtest.sh).  Success means: no crash of this process beyond EFAULT-style
 * errors, and (checked by the caller) a clean kernel log.
 *
 * Usage: ioctl_fuzz <iterations> <seed>
 * While it runs, a child in netns "msb" sends UDP to 10.0.0.1:7000-7015 so
 * the rx_handler writes into rings whose indices are being scribbled on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/uapi/multistack.h"

#define NFD 4
#define NSOCK 8

static uint64_t rng;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static struct {
	int fd;
	uint8_t *mem;
	size_t size;
} f[NFD];

static int socks[NSOCK];
static long okc[16], callc[16], maps, polls;

static const unsigned long cmds[] = {
	MS_IOC_ATTACH, MS_IOC_DETACH, MS_IOC_PORT_BIND, MS_IOC_REGISTER,
	MS_IOC_UNREGISTER, MS_IOC_TXSYNC, MS_IOC_RXSYNC, MS_IOC_STATS,
	MS_IOC_INFO,
};

static void fill_arg(uint8_t *a, size_t n, unsigned long cmd)
{
	uint32_t mode = rnd() % 4;
	size_t i;

	for (i = 0; i < n; i++)
		a[i] = (uint8_t)rnd();
	if (mode == 0)
		return;			/* pure garbage */
	/* plausible header */
	((uint32_t *)a)[0] = mode == 3 ? rnd() % 3 : MS_ABI_VERSION;
	((uint32_t *)a)[1] = rnd() % 8 ? 0 : rnd();
	if (cmd == MS_IOC_REGISTER || cmd == MS_IOC_UNREGISTER) {
		struct ms_reg_req *r = (void *)a;

		memset(r->reserved, 0, sizeof(r->reserved));
		uint32_t si = rnd() % 6;	/* sockets 0..5 are bound */

		r->family = rnd() % 8 ? MS_FAMILY_INET :
			    (rnd() % 2 ? MS_FAMILY_INET6 : (uint8_t)rnd());
		r->proto = si % 3 == 2 ? MS_PROTO_TCP : MS_PROTO_UDP;
		if (rnd() % 8 == 0)
			r->proto = rnd() % 2 ? MS_PROTO_TCP : (uint8_t)rnd();
		r->port = (uint16_t)(7000 + (rnd() % 4 ? si : rnd() % 16));
		r->sockfd = rnd() % 8 ? socks[si] : (int32_t)rnd();
		memset(r->addr, 0, 16);
		if (rnd() % 8)
			inet_pton(AF_INET, "10.0.0.1", r->addr);
		else if (rnd() % 2)
			inet_pton(AF_INET6, "fd00::1", r->addr);
		else
			r->addr[rnd() % 16] = (uint8_t)rnd();
	} else if (cmd == MS_IOC_PORT_BIND || cmd == MS_IOC_INFO) {
		struct ms_port_req *r = (void *)a;

		memset(r->reserved, 0, sizeof(r->reserved));
		memset(r->ifname, 0, sizeof(r->ifname));
		strcpy(r->ifname, rnd() % 8 ? "va" : "lo");
		r->tx_slots = rnd() % 4 ? 1u << (rnd() % 14) : rnd();
		r->rx_slots = rnd() % 4 ? 1u << (rnd() % 14) : rnd();
		r->buf_size = rnd() % 2 ? 0 : (rnd() % 4 ? 64 * (rnd() % 300)
					       : rnd());
		r->mem_size = r->ifindex = r->port_id = 0;
	} else if (cmd == MS_IOC_STATS) {
		struct ms_stats *s = (void *)a;

		memset(s->reserved, 0, sizeof(s->reserved));
		memset(s->ifname, 0, sizeof(s->ifname));
		if (rnd() % 2)
			strcpy(s->ifname, "va");
	} else if (cmd == MS_IOC_ATTACH || cmd == MS_IOC_DETACH) {
		struct ms_if_req *r = (void *)a;

		memset(r->reserved, 0, sizeof(r->reserved));
		memset(r->ifname, 0, sizeof(r->ifname));
		strcpy(r->ifname, rnd() % 4 ? "va" : "vb");
	}
}

static void scribble(int i)
{
	struct ms_netmap_if *nif = (void *)f[i].mem;
	struct ms_netmap_ring *r;
	uint32_t k, n;

	if (!f[i].mem)
		return;
	r = (void *)(f[i].mem + nif->ring_ofs[rnd() % 2]);
	n = r->num_slots;
	switch (rnd() % 6) {
	case 0:
		r->head = rnd() % 3 ? rnd() % n : rnd();
		break;
	case 1:	/* legit-looking: release everything / queue frames */
		r->head = r->cur = r->tail;
		break;
	case 2:
		k = rnd() % n;
		((struct ms_netmap_slot *)((uint8_t *)r + 256))[k].buf_idx =
			rnd() % 3 ? rnd() % (2 * n) : rnd();
		break;
	case 3:
		k = rnd() % n;
		((struct ms_netmap_slot *)((uint8_t *)r + 256))[k].len =
			(uint16_t)rnd();
		break;
	case 4:	/* random bytes into a buffer */
		k = rnd() % nif->ni_nbufs;
		memset((uint8_t *)r + r->buf_ofs + (size_t)k * r->nr_buf_size,
		       (int)rnd(), rnd() % r->nr_buf_size);
		break;
	default:
		r->head = (r->head + rnd() % n) % n;
		break;
	}
}

static void peer_flood(void)
{
	int nfd = open("/run/netns/msb", O_RDONLY), s;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char b[600];

	if (nfd < 0 || setns(nfd, CLONE_NEWNET))
		_exit(1);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, "10.0.0.1", &sa.sin_addr);
	memset(b, 'f', sizeof(b));
	for (;;) {
		sa.sin_port = htons((uint16_t)(7000 + rnd() % 16));
		sendto(s, b, 20 + rnd() % 500, 0, (void *)&sa, sizeof(sa));
		if (rnd() % 64 == 0)
			usleep(1000);
	}
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 10000, it;
	static uint8_t arg[8192];
	pid_t flood;
	int i;

	rng = argc > 2 ? strtoull(argv[2], NULL, 0) | 1 : 1;
	flood = fork();
	if (flood == 0)
		peer_flood();
	for (i = 0; i < NSOCK; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)(7000 + i)) };
		int type = i % 3 == 2 ? SOCK_STREAM : SOCK_DGRAM;

		socks[i] = socket(i == 7 ? AF_INET6 : AF_INET, type, 0);
		if (i < 6) {
			inet_pton(AF_INET, i % 2 ? "10.0.0.1" : "0.0.0.0",
				  &sa.sin_addr);
			bind(socks[i], (void *)&sa, sizeof(sa));
		}
	}
	for (i = 0; i < NFD; i++)
		f[i].fd = -1;

	for (it = 0; it < iters; it++) {
		int k = (int)(rnd() % NFD);
		uint32_t op = rnd() % 100;

		if (f[k].fd < 0) {
			f[k].fd = open(MS_DEVICE_PATH, O_RDWR);
			continue;
		}
		if (op < 3) {			/* close */
			if (f[k].mem)
				munmap(f[k].mem, f[k].size);
			close(f[k].fd);
			f[k].fd = -1;
			f[k].mem = NULL;
		} else if (op < 8) {		/* mmap */
			struct ms_port_req r = { .version = MS_ABI_VERSION };
			size_t sz;
			void *m;

			if (ioctl(f[k].fd, MS_IOC_INFO, &r))
				sz = 4096 * (1 + rnd() % 8);
			else
				sz = rnd() % 4 ? r.mem_size :
				     r.mem_size + 4096 * (rnd() % 3) - 4096;
			m = mmap(NULL, sz, PROT_READ | PROT_WRITE,
				 rnd() % 8 ? MAP_SHARED : MAP_PRIVATE, f[k].fd,
				 rnd() % 8 ? 0 : 4096);
			if (m != MAP_FAILED) {
				maps++;
				if (f[k].mem)
					munmap(m, sz);	/* keep the first */
				else {
					f[k].mem = m;
					f[k].size = sz;
				}
			}
		} else if (op < 25) {
			scribble(k);
		} else if (op < 35) {
			struct pollfd p = { .fd = f[k].fd,
					    .events = (short)(rnd() % 2 ? POLLIN :
						      POLLIN | POLLOUT) };
			if (poll(&p, 1, 0) > 0 && !(p.revents & POLLERR))
				polls++;
		} else {
			unsigned long cmd;
			void *a = arg;

			if (rnd() % 10)
				cmd = cmds[rnd() % (sizeof(cmds) / sizeof(cmds[0]))];
			else
				cmd = _IOC(rnd() % 4, MS_IOC_MAGIC, rnd() % 16,
					   rnd() % 1024);
			fill_arg(arg, sizeof(arg), cmd);
			if (cmd == MS_IOC_DETACH && rnd() % 64)
				cmd = MS_IOC_STATS;	/* detach rarely */
			if (rnd() % 50 == 0)
				a = (void *)(uintptr_t)(rnd() % 2 ? 1 : 0);
			callc[_IOC_NR(cmd) & 15]++;
			if (ioctl(f[k].fd, cmd, a) == 0)
				okc[_IOC_NR(cmd) & 15]++;
			if (cmd == MS_IOC_DETACH) {
				struct ms_if_req r = { .version = MS_ABI_VERSION };

				strcpy(r.ifname, "va");
				ioctl(f[k].fd, MS_IOC_ATTACH, &r);
			}
		}
	}
	kill(flood, SIGKILL);
	waitpid(flood, NULL, 0);
	for (i = 0; i < NFD; i++)
		if (f[i].fd >= 0)
			close(f[i].fd);
	printf("ioctl_fuzz: %ld iterations done; %ld mmaps, %ld polls ready\n",
	       iters, maps, polls);
	for (i = 1; i < 10; i++)
		printf("  ioctl nr %d: %ld calls, %ld succeeded\n", i, callc[i],
		       okc[i]);
	return 0;
}
