// SPDX-License-Identifier: GPL-2.0
/*
 * mstest - end-to-end self test of multistack.ko, run as root inside the VM
 * (kmod/tools/vmtest.sh sets up the namespaces and runs it).
 *
 * Topology: netns "msa" holds veth "va" (10.0.0.1/24, fd00::1/64) where the
 * module is attached; netns "msb" holds the peer "vb" (10.0.0.2, fd00::2).
 * This program runs in msa; helpers fork, setns() into msb and send or
 * receive there.
 *
 * Usage: mstest <step>...   steps: attach detach reg rx tx full ipv6 close
 *                           vanish all (= reg..close; vanish deletes va)
 * Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
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
#include <time.h>
#include <unistd.h>

#include "../include/uapi/multistack_user.h"
#include "../include/multistack_classify.h"

static int failures;
static const char *ifname = "va";

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		printf("ok   " __VA_ARGS__);				\
	} else {							\
		printf("FAIL " __VA_ARGS__);				\
		printf("     (%s:%d: %s)\n", __FILE__, __LINE__, #cond); \
		failures++;						\
	}								\
	putchar('\n');							\
} while (0)

struct port {
	int fd;
	uint8_t *mem;
	struct ms_port_req info;
	struct ms_netmap_if *nif;
	struct ms_netmap_ring *tx, *rx;
};

static int dev_open(void)
{
	int fd = open(MS_DEVICE_PATH, O_RDWR);

	if (fd < 0) {
		perror(MS_DEVICE_PATH);
		exit(2);
	}
	return fd;
}

static int if_ioctl(unsigned long cmd, const char *name)
{
	struct ms_if_req r = { .version = MS_ABI_VERSION };
	int fd = dev_open(), ret;

	strncpy(r.ifname, name, sizeof(r.ifname) - 1);
	ret = ioctl(fd, cmd, &r) ? errno : 0;
	close(fd);
	return ret;
}

static int port_open(struct port *p, uint32_t slots, uint32_t bufsz)
{
	memset(p, 0, sizeof(*p));
	p->fd = dev_open();
	p->info.version = MS_ABI_VERSION;
	strncpy(p->info.ifname, ifname, sizeof(p->info.ifname) - 1);
	p->info.tx_slots = slots;
	p->info.rx_slots = slots;
	p->info.buf_size = bufsz;
	if (ioctl(p->fd, MS_IOC_PORT_BIND, &p->info))
		return errno;
	p->mem = mmap(NULL, p->info.mem_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, p->fd, 0);
	if (p->mem == MAP_FAILED)
		return errno;
	p->nif = ms_mem_if(p->mem);
	p->tx = ms_tx_ring(p->nif);
	p->rx = ms_rx_ring(p->nif);
	return 0;
}

static void port_close(struct port *p)
{
	if (p->mem && p->mem != MAP_FAILED)
		munmap(p->mem, p->info.mem_size);
	close(p->fd);
	memset(p, 0, sizeof(*p));
}

static int reg_ioctl(struct port *p, unsigned long cmd, int family, int proto,
		     const char *addr, int port, int sockfd)
{
	struct ms_reg_req r = { .version = MS_ABI_VERSION };

	r.family = (uint8_t)family;
	r.proto = (uint8_t)proto;
	r.port = (uint16_t)port;
	r.sockfd = sockfd;
	inet_pton(family == MS_FAMILY_INET6 ? AF_INET6 : AF_INET, addr, r.addr);
	return ioctl(p->fd, cmd, &r) ? errno : 0;
}

static int bound_socket(int family, int type, const char *addr, int port)
{
	int s = socket(family, type, 0);

	/* no SO_REUSEADDR: a proof must hold its tuple alone (EPERM) */
	if (family == AF_INET) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons(port) };
		inet_pton(AF_INET, addr, &sa.sin_addr);
		if (bind(s, (void *)&sa, sizeof(sa)))
			perror("bind");
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
					   .sin6_port = htons(port) };
		inet_pton(AF_INET6, addr, &sa.sin6_addr);
		if (bind(s, (void *)&sa, sizeof(sa)))
			perror("bind6");
	}
	return s;
}

static void get_stats(struct port *p, struct ms_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->version = MS_ABI_VERSION;
	if (ioctl(p->fd, MS_IOC_STATS, st))
		perror("MS_IOC_STATS");
}

/* run fn in netns msb in a child; returns its exit status */
static int in_peer(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int nfd = open("/run/netns/msb", O_RDONLY);

		if (nfd < 0 || setns(nfd, CLONE_NEWNET)) {
			perror("setns msb");
			_exit(99);
		}
		_exit(fn(arg));
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

struct send_args {
	int family;
	const char *dst;
	int port;
	int count;
	int len;
};

static int peer_send(void *a)
{
	struct send_args *s = a;
	char payload[2048];
	int fd = socket(s->family, SOCK_DGRAM, 0), i;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;

	memset(payload, 'x', sizeof(payload));
	if (s->family == AF_INET) {
		struct sockaddr_in *sa = (void *)&ss;

		sa->sin_family = AF_INET;
		sa->sin_port = htons(s->port);
		inet_pton(AF_INET, s->dst, &sa->sin_addr);
		sl = sizeof(*sa);
	} else {
		struct sockaddr_in6 *sa = (void *)&ss;

		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons(s->port);
		inet_pton(AF_INET6, s->dst, &sa->sin6_addr);
		sl = sizeof(*sa);
	}
	for (i = 0; i < s->count; i++) {
		snprintf(payload, sizeof(payload), "pkt%d", i);
		if (sendto(fd, payload, s->len, 0, (void *)&ss, sl) < 0) {
			perror("sendto");
			return 1;
		}
		if (s->count > 50 && i % 50 == 0)
			usleep(1000);
	}
	return 0;
}

static void peer_udp(int family, const char *dst, int port, int count,
		     int len)
{
	struct send_args a = { family, dst, port, count, len };

	if (in_peer(peer_send, &a))
		printf("peer send failed\n");
}

/* wait for RX frames, return how many are available */
static int rx_wait(struct port *p, int want, int ms)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	int got = 0;

	while (ms > 0) {
		int r = poll(&pfd, 1, 50);

		if (r < 0 || (pfd.revents & POLLERR))
			return -1;
		got = (int)ms_ring_space(p->rx);
		if (got >= want)
			break;
		ms -= 50;
	}
	return got;
}

static void rx_release(struct port *p)
{
	ms_ring_advance(p->rx, ms_ring_tail(p->rx));
	ms_rxsync(p->fd);
}

static int get_mac(const char *name, uint8_t mac[6])
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0), r;

	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	r = ioctl(s, SIOCGIFHWADDR, &ifr);
	close(s);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return r;
}

static uint16_t csum16(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* builds Ethernet/IPv4/UDP; returns length */
static int build_udp4(uint8_t *f, const uint8_t dmac[6], const uint8_t smac[6],
		      const char *src, int sport, const char *dst, int dport,
		      int plen)
{
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint16_t c;

	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08; f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + 8 + plen) >> 8);
	ip[3] = (uint8_t)(20 + 8 + plen);
	ip[6] = 0x40;		/* DF */
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	c = csum16(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[0] = (uint8_t)(sport >> 8); udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8); udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + plen) >> 8); udp[5] = (uint8_t)(8 + plen);
	udp[6] = udp[7] = 0;	/* no checksum */
	memset(udp + 8, 'T', plen);
	return 14 + 20 + 8 + plen;
}

static int build_udp6(uint8_t *f, const uint8_t dmac[6], const uint8_t smac[6],
		      const char *src, int sport, const char *dst, int dport,
		      int plen)
{
	uint8_t *ip = f + 14, *udp = ip + 40;
	uint32_t sum = 0;
	uint16_t c;
	int i;

	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x86; f[13] = 0xdd;
	memset(ip, 0, 40);
	ip[0] = 0x60;
	ip[4] = (uint8_t)((8 + plen) >> 8);
	ip[5] = (uint8_t)(8 + plen);
	ip[6] = 17;
	ip[7] = 64;
	inet_pton(AF_INET6, src, ip + 8);
	inet_pton(AF_INET6, dst, ip + 24);
	udp[0] = (uint8_t)(sport >> 8); udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8); udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + plen) >> 8); udp[5] = (uint8_t)(8 + plen);
	udp[6] = udp[7] = 0;
	memset(udp + 8, 'S', plen);
	for (i = 0; i < 32; i += 2)
		sum += (uint32_t)(ip[8 + i] << 8 | ip[9 + i]);
	sum += 17 + 8 + (uint32_t)plen;
	c = csum16(udp, 8 + (size_t)plen, sum);
	if (!c)
		c = 0xffff;
	udp[6] = (uint8_t)(c >> 8);
	udp[7] = (uint8_t)c;
	return 14 + 40 + 8 + plen;
}

static void tx_put(struct port *p, const uint8_t *f, int len)
{
	struct ms_netmap_ring *r = p->tx;
	struct ms_netmap_slot *s = ms_ring_slot(r, r->head);

	memcpy(ms_ring_buf(r, s->buf_idx), f, len);
	s->len = (uint16_t)len;
	ms_ring_advance(r, ms_ring_next(r, r->head));
}

/* ---------------- tests ---------------- */

static void test_reg(void)
{
	struct port p, q;
	int s, s2, u, e;

	printf("== registration\n");
	CHECK(port_open(&p, 64, 0) == 0, "port bind + mmap");
	CHECK(p.info.mem_size > 0 && p.nif->ni_version == MS_ABI_VERSION &&
	      !strcmp(p.nif->ni_name, ifname), "netmap_if header");
	CHECK(p.tx->num_slots == 64 && p.tx->tail == 63 && p.rx->tail == 0,
	      "ring init");
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 7001);
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, s) == 0,
	      "register udp 10.0.0.1:7001");
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, s) ==
	      EADDRINUSE, "duplicate -> EADDRINUSE");
	CHECK(port_open(&q, 64, 0) == 0, "second port");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, s) ==
	      EADDRINUSE, "duplicate on other port -> EADDRINUSE");
	u = socket(AF_INET, SOCK_DGRAM, 0);
	e = reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7002, u);
	CHECK(e == EACCES, "unbound socket -> EACCES (got %d)", e);
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7003, s) ==
	      EACCES, "socket bound to another port -> EACCES");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 6, "10.0.0.1", 7001, s) ==
	      EPROTOTYPE, "UDP socket for a TCP tuple -> EPROTOTYPE");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 1, "10.0.0.1", 7001, s) ==
	      EPROTONOSUPPORT, "ICMP -> EPROTONOSUPPORT");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 7, 17, "10.0.0.1", 7001, s) ==
	      EAFNOSUPPORT, "bad family -> EAFNOSUPPORT");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, 0) ==
	      ENOTSOCK, "stdin -> ENOTSOCK");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, 999) ==
	      EBADF, "closed fd -> EBADF");
	s2 = bound_socket(AF_INET, SOCK_DGRAM, "0.0.0.0", 7004);
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.9.9.9", 7004, s2) ==
	      EADDRNOTAVAIL, "address not on interface -> EADDRNOTAVAIL");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7004, s2) == 0,
	      "wildcard-bound socket registers 10.0.0.1:7004");
	CHECK(reg_ioctl(&q, MS_IOC_UNREGISTER, 2, 17, "10.0.0.1", 7001, -1) ==
	      ENOENT, "unregister other port's tuple -> ENOENT");
	CHECK(reg_ioctl(&p, MS_IOC_UNREGISTER, 2, 17, "10.0.0.1", 7001, -1) ==
	      0, "unregister own tuple");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 7001, s) == 0,
	      "tuple free again after unregister");
	{
		struct ms_reg_req r = { .version = 2 };
		CHECK(ioctl(q.fd, MS_IOC_REGISTER, &r) && errno == EINVAL,
		      "bad version -> EINVAL");
		r.version = MS_ABI_VERSION;
		r.reserved[3] = 1;
		CHECK(ioctl(q.fd, MS_IOC_REGISTER, &r) && errno == EINVAL,
		      "nonzero reserved -> EINVAL");
	}
	{
		int fd = dev_open();
		struct ms_reg_req r = { .version = MS_ABI_VERSION };
		CHECK(ioctl(fd, MS_IOC_REGISTER, &r) && errno == ENOTCONN,
		      "register on unbound fd -> ENOTCONN");
		CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) ==
		      MAP_FAILED, "mmap unbound fd fails");
		close(fd);
	}
	CHECK(mmap(NULL, p.info.mem_size - 4096, PROT_READ, MAP_SHARED, p.fd,
		   0) == MAP_FAILED && errno == EINVAL,
	      "mmap of the wrong size -> EINVAL");
	{
		struct port r;
		CHECK(port_open(&r, 100, 0) == EINVAL,
		      "non power of two slots -> EINVAL");
		port_close(&r);
	}
	CHECK(if_ioctl(MS_IOC_ATTACH, ifname) == EEXIST,
	      "attach twice -> EEXIST");
	CHECK(if_ioctl(MS_IOC_ATTACH, "nosuch0") == ENODEV,
	      "attach unknown interface -> ENODEV");
	close(s);
	close(s2);
	close(u);
	port_close(&p);
	port_close(&q);
}

static void test_rx(void)
{
	struct port p, q;
	struct ms_stats st;
	int s1, s2, n, i, ok;

	printf("== RX demux\n");
	port_open(&p, 256, 0);
	port_open(&q, 256, 0);
	s1 = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8001);
	s2 = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8002);
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8001, s1) == 0,
	      "p registers 8001");
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8002, s2) == 0,
	      "q registers 8002");
	peer_udp(AF_INET, "10.0.0.1", 8001, 10, 100);
	peer_udp(AF_INET, "10.0.0.1", 8002, 5, 200);
	n = rx_wait(&p, 10, 3000);
	CHECK(n == 10, "p got 10 frames (got %d)", n);
	ok = 1;
	for (i = 0; i < n; i++) {
		struct ms_netmap_slot *sl =
			ms_ring_slot(p.rx, (p.rx->head + i) & (p.rx->num_slots - 1));
		struct ms_cls_result c;
		uint8_t *f = ms_ring_buf(p.rx, sl->buf_idx);

		if (ms_classify(f, sl->len, 0, &c) != MS_CLS_OK ||
		    c.dst_port != 8001 || sl->len != 14 + 20 + 8 + 100)
			ok = 0;
		/* udp checksum must be complete: verify */
		{
			uint8_t *ip = f + 14, *udp = ip + 20;
			uint32_t sum = 0;
			int j;

			for (j = 0; j < 8; j += 2)
				sum += (uint32_t)(ip[12 + j] << 8 | ip[13 + j]);
			sum += 17 + 108;
			if (udp[6] | udp[7])
				if (csum16(udp, 108, sum) != 0)
					ok = 0;
		}
	}
	CHECK(ok, "p's frames are whole, for 8001, with valid checksums");
	n = rx_wait(&q, 5, 3000);
	CHECK(n == 5, "q got 5 frames (got %d)", n);
	rx_release(&p);
	rx_release(&q);
	get_stats(&p, &st);
	CHECK(st.port[MS_STAT_RX_DELIVERED] == 10, "p rx_delivered = 10 (%llu)",
	      (unsigned long long)st.port[MS_STAT_RX_DELIVERED]);
	/* the OS socket bound to the tuple saw nothing */
	{
		char b[64];
		CHECK(recv(s1, b, sizeof(b), MSG_DONTWAIT) < 0,
		      "OS socket did not receive the port's traffic");
	}
	/* passthrough: an unregistered port reaches the kernel socket */
	{
		int k = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8009);
		struct timeval tv = { 2, 0 };
		char b[64];

		setsockopt(k, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		peer_udp(AF_INET, "10.0.0.1", 8009, 1, 10);
		CHECK(recv(k, b, sizeof(b), 0) == 10,
		      "unregistered UDP port goes to the OS stack");
		close(k);
	}
	get_stats(&p, &st);
	CHECK(st.iface[MS_STAT_RX_PASSED] >= 1, "iface rx_passed counted");
	close(s1);
	close(s2);
	port_close(&p);
	port_close(&q);
}

static int peer_recv_udp(void *a)
{
	int port = *(int *)a, n = 0;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	struct timeval tv = { 2, 0 };
	char b[2048];

	bind(s, (void *)&sa, sizeof(sa));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* tell parent we're ready */
	if (write(3, "r", 1) != 1)
		return 100;
	while (recv(s, b, sizeof(b), 0) > 0)
		n++;
	return n;
}

static void test_tx(void)
{
	struct port p, q;
	struct ms_stats st;
	uint8_t mac[6], pmac[6], bad[6] = { 2, 0, 0, 0, 0, 9 }, f[2048];
	int s1, s2, pfd[2], rport = 9100, len;
	pid_t pid;
	char c;

	printf("== TX validation\n");
	get_mac(ifname, mac);
	/* peer MAC: ask the neighbour table indirectly by a child in msb */
	{
		int mp[2];
		pid_t k;

		if (pipe(mp))
			return;
		k = fork();
		if (k == 0) {
			int nfd = open("/run/netns/msb", O_RDONLY);

			if (setns(nfd, CLONE_NEWNET))
				_exit(1);
			get_mac("vb", pmac);
			if (write(mp[1], pmac, 6) != 6)
				_exit(1);
			_exit(0);
		}
		if (read(mp[0], pmac, 6) != 6)
			printf("no peer mac\n");
		waitpid(k, NULL, 0);
		close(mp[0]);
		close(mp[1]);
	}
	port_open(&p, 64, 0);
	port_open(&q, 64, 0);
	s1 = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 9001);
	s2 = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 9002);
	reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 9001, s1);
	reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 9002, s2);

	/* receiver in msb, readiness over fd 3 */
	if (pipe(pfd))
		return;
	pid = fork();
	if (pid == 0) {
		int nfd = open("/run/netns/msb", O_RDONLY);

		if (setns(nfd, CLONE_NEWNET))
			_exit(99);
		dup2(pfd[1], 3);
		_exit(peer_recv_udp(&rport));
	}
	if (read(pfd[0], &c, 1) != 1)
		printf("receiver not ready\n");

	/* 3 good frames */
	for (int i = 0; i < 3; i++) {
		len = build_udp4(f, pmac, mac, "10.0.0.1", 9001, "10.0.0.2",
				 rport, 50);
		tx_put(&p, f, len);
	}
	/* rejections */
	len = build_udp4(f, pmac, mac, "10.0.0.1", 9002, "10.0.0.2", rport, 50);
	tx_put(&p, f, len);				/* other port */
	len = build_udp4(f, pmac, mac, "10.0.0.1", 9999, "10.0.0.2", rport, 50);
	tx_put(&p, f, len);				/* not owned */
	len = build_udp4(f, pmac, bad, "10.0.0.1", 9001, "10.0.0.2", rport, 50);
	tx_put(&p, f, len);				/* bad mac */
	len = build_udp4(f, pmac, mac, "10.0.0.1", 9001, "10.0.0.2", rport, 50);
	f[14 + 10] ^= 0xff;				/* bad ip csum */
	tx_put(&p, f, len);
	memset(f, 0xab, 100);
	tx_put(&p, f, 100);				/* garbage */
	len = build_udp4(f, pmac, mac, "10.0.0.1", 9001, "10.0.0.2", rport, 0);
	tx_put(&p, f, 30);				/* runt */
	len = build_udp4(f, pmac, mac, "10.0.0.1", 9001, "10.0.0.2", rport,
			 1600);
	tx_put(&p, f, len);				/* oversize */
	CHECK(ms_txsync(p.fd) == 0, "TXSYNC");
	CHECK(p.tx->tail == ((p.tx->head + 63) & 63), "TX space reclaimed");
	waitpid(pid, &len, 0);
	CHECK(WIFEXITED(len) && WEXITSTATUS(len) == 3,
	      "peer received exactly the 3 valid frames (%d)",
	      WEXITSTATUS(len));
	get_stats(&p, &st);
	CHECK(st.port[MS_STAT_TX_SENT] == 3, "tx_sent 3");
	CHECK(st.port[MS_STAT_TX_REJ_OTHER_PORT] == 1, "rej other port");
	CHECK(st.port[MS_STAT_TX_REJ_NOT_OWNED] == 1, "rej not owned");
	CHECK(st.port[MS_STAT_TX_REJ_BAD_MAC] == 1, "rej bad mac");
	CHECK(st.port[MS_STAT_TX_REJ_MALFORMED] == 2,
	      "rej malformed (csum, garbage) = %llu",
	      (unsigned long long)st.port[MS_STAT_TX_REJ_MALFORMED]);
	CHECK(st.port[MS_STAT_TX_REJ_RUNT] == 1, "rej runt");
	CHECK(st.port[MS_STAT_TX_REJ_OVERSIZE] == 1, "rej oversize");
	p.tx->head = 77;
	CHECK(ms_txsync(p.fd) == -EINVAL,
	      "TX head out of range -> EINVAL");
	close(pfd[0]);
	close(pfd[1]);
	close(s1);
	close(s2);
	port_close(&p);
	port_close(&q);
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static int peer_gso(void *a)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0), seg = 500;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(*(int *)a) };
	char b[5000];

	memset(b, 'g', sizeof(b));
	inet_pton(AF_INET, "10.0.0.1", &sa.sin_addr);
	if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg)))
		return 2;
	return sendto(fd, b, 5000, 0, (void *)&sa, sizeof(sa)) == 5000 ? 0 : 1;
}

static int peer_tcp_connect(void *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(*(int *)a) };

	inet_pton(AF_INET, "10.0.0.1", &sa.sin_addr);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	connect(fd, (void *)&sa, sizeof(sa));
	usleep(200000);
	return 0;
}

static void test_gso_tcp(void)
{
	struct port p;
	struct ms_stats st;
	int s, t, n, i, ok, port = 8601, tport = 8602;

	printf("== GSO (UDP_SEGMENT over veth) and TCP\n");
	port_open(&p, 64, 0);
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", port);
	t = bound_socket(AF_INET, SOCK_STREAM, "10.0.0.1", tport);
	listen(t, 4);
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", port, s) == 0,
	      "register udp 8601");
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 6, "10.0.0.1", tport, t) == 0,
	      "register listening tcp 8602");
	CHECK(in_peer(peer_gso, &port) == 0, "peer sent 5000 B with UDP_SEGMENT=500");
	n = rx_wait(&p, 10, 3000);
	CHECK(n == 10, "10 wire-sized segments delivered (%d)", n);
	ok = n == 10;
	for (i = 0; i < n; i++) {
		struct ms_netmap_slot *sl =
			ms_ring_slot(p.rx, (p.rx->head + i) & (p.rx->num_slots - 1));
		uint8_t *f = ms_ring_buf(p.rx, sl->buf_idx), *ip = f + 14;
		uint32_t sum = 0;
		int j;

		if (sl->len != 14 + 20 + 8 + 500)
			ok = 0;
		for (j = 0; j < 8; j += 2)
			sum += (uint32_t)(ip[12 + j] << 8 | ip[13 + j]);
		sum += 17 + 508;
		if ((ip[26] | ip[27]) && csum16(ip + 20, 508, sum) != 0)
			ok = 0;
		if (csum16(ip, 20, 0) != 0)
			ok = 0;
	}
	CHECK(ok, "segments are 542 B with valid IP and UDP checksums");
	rx_release(&p);
	in_peer(peer_tcp_connect, &tport);
	n = rx_wait(&p, 1, 2000);
	CHECK(n >= 1, "TCP SYN for the registered listener went to the port (%d)", n);
	if (n >= 1) {
		struct ms_netmap_slot *sl = ms_ring_slot(p.rx, p.rx->head);
		struct ms_cls_result c;

		CHECK(ms_classify(ms_ring_buf(p.rx, sl->buf_idx), sl->len, 0,
				  &c) == 0 &&
		      c.proto == 6 && c.dst_port == tport,
		      "it is a TCP frame for 8602");
	}
	{
		int a;

		fcntl(t, F_SETFL, O_NONBLOCK);
		a = accept(t, NULL, NULL);
		CHECK(a < 0, "the OS listener saw no connection");
		if (a >= 0)
			close(a);
	}
	rx_release(&p);
	get_stats(&p, &st);
	CHECK(st.port[MS_STAT_RX_DROP_FULL] == 0 &&
	      st.port[MS_STAT_RX_DROP_SIZE] == 0, "no drops");
	close(s);
	close(t);
	port_close(&p);
}

static int peer_tcp_bulk(void *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(*(int *)a) };
	struct timeval tv = { 3, 0 };
	static char b[30000];

	memset(b, 'd', sizeof(b));
	inet_pton(AF_INET, "10.0.0.1", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (void *)&sa, sizeof(sa)))
		return 1;
	if (send(fd, b, sizeof(b), MSG_DONTWAIT) <= 0)
		return 2;
	sleep(2);
	return 0;
}

static uint16_t tcp4_csum(const uint8_t *ip, const uint8_t *tcp, int tlen)
{
	uint32_t sum = 0;
	int j;

	for (j = 0; j < 8; j += 2)
		sum += (uint32_t)(ip[12 + j] << 8 | ip[13 + j]);
	sum += 6 + (uint32_t)tlen;
	return csum16(tcp, (size_t)tlen, sum);
}

/* Handshake by hand through the port, then the peer's kernel TCP sends a
 * burst that leaves as TSO super-frames over veth: the port must see
 * wire-sized segments with valid checksums. */
static void test_tcp_gso(void)
{
	struct port p;
	uint8_t f[128];
	int t, tport = 8701, n, i, ok = 1, data = 0, st;
	pid_t pid;

	printf("== TCP handshake via the port, TSO burst from the peer\n");
	port_open(&p, 256, 0);
	t = bound_socket(AF_INET, SOCK_STREAM, "10.0.0.1", tport);
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 6, "10.0.0.1", tport, t) == 0,
	      "register tcp 8701 (bound, not listening)");
	pid = fork();
	if (pid == 0) {
		int nfd = open("/run/netns/msb", O_RDONLY);

		if (setns(nfd, CLONE_NEWNET))
			_exit(99);
		_exit(peer_tcp_bulk(&tport));
	}
	n = rx_wait(&p, 1, 3000);
	CHECK(n >= 1, "SYN delivered");
	if (n >= 1) {
		struct ms_netmap_slot *sl = ms_ring_slot(p.rx, p.rx->head);
		uint8_t *syn = ms_ring_buf(p.rx, sl->buf_idx), *ip = f + 14, *tcp;
		uint32_t seq = (uint32_t)syn[38] << 24 | syn[39] << 16 |
			       syn[40] << 8 | syn[41];
		uint16_t c;

		memcpy(f, syn + 6, 6);		/* dst = peer */
		memcpy(f + 6, syn, 6);		/* src = us */
		f[12] = 8; f[13] = 0;
		memset(ip, 0, 20);
		ip[0] = 0x45; ip[3] = 44; ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
		memcpy(ip + 12, syn + 14 + 16, 4);
		memcpy(ip + 16, syn + 14 + 12, 4);
		c = csum16(ip, 20, 0);
		ip[10] = (uint8_t)(c >> 8); ip[11] = (uint8_t)c;
		tcp = ip + 20;
		memset(tcp, 0, 24);
		memcpy(tcp, syn + 34 + 2, 2);	/* sport = their dport */
		memcpy(tcp + 2, syn + 34, 2);
		tcp[4] = 0; tcp[5] = 0; tcp[6] = 0x03; tcp[7] = 0xe8;	/* seq 1000 */
		seq++;
		tcp[8] = (uint8_t)(seq >> 24); tcp[9] = (uint8_t)(seq >> 16);
		tcp[10] = (uint8_t)(seq >> 8); tcp[11] = (uint8_t)seq;
		tcp[12] = 6 << 4; tcp[13] = 0x12;
		tcp[14] = 0xff; tcp[15] = 0xff;
		tcp[20] = 2; tcp[21] = 4; tcp[22] = 0x05; tcp[23] = 0xb4;
		c = tcp4_csum(ip, tcp, 24);
		tcp[16] = (uint8_t)(c >> 8); tcp[17] = (uint8_t)c;
		rx_release(&p);
		tx_put(&p, f, 14 + 44);
		CHECK(ms_txsync(p.fd) == 0, "SYN-ACK sent");
	}
	/* collect for 2 s */
	for (i = 0; i < 40; i++) {
		n = rx_wait(&p, 1, 50);
		while (n-- > 0) {
			struct ms_netmap_slot *sl = ms_ring_slot(p.rx, p.rx->head);
			uint8_t *fr = ms_ring_buf(p.rx, sl->buf_idx), *ip = fr + 14;
			int tl = (ip[2] << 8 | ip[3]) - 20;

			if (sl->len > 1514 || tcp4_csum(ip, ip + 20, tl) != 0)
				ok = 0;
			data += tl - (ip[32] >> 4) * 4;
			ms_ring_advance(p.rx, ms_ring_next(p.rx, p.rx->head));
		}
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer connected and sent");
	CHECK(data >= 2 * 1460, "peer's burst reached the port (%d payload bytes)",
	      data);
	CHECK(ok, "every segment <= 1514 B with a valid TCP checksum");
	close(t);
	port_close(&p);
}

struct raw_args {
	uint8_t dmac[6];
	int dport;
};

/* from msb, AF_PACKET: one valid frame and three malformed ones */
static int peer_raw(void *a)
{
	struct raw_args *r = a;
	struct sockaddr_ll ll = { .sll_family = AF_PACKET,
				  .sll_halen = 6 };
	uint8_t f[256], smac[6];
	int fd = socket(AF_PACKET, SOCK_RAW, 0), len;

	if (fd < 0 || get_mac("vb", smac))
		return 1;
	ll.sll_ifindex = (int)if_nametoindex("vb");
	memcpy(ll.sll_addr, r->dmac, 6);
	len = build_udp4(f, r->dmac, smac, "10.0.0.2", 5555, "10.0.0.1",
			 r->dport, 30);
	sendto(fd, f, len, 0, (void *)&ll, sizeof(ll));		/* good */
	f[14 + 10] ^= 0x55;					/* csum */
	sendto(fd, f, len, 0, (void *)&ll, sizeof(ll));
	f[14 + 10] ^= 0x55;
	f[14] = 0x44;						/* IHL 4 */
	sendto(fd, f, len, 0, (void *)&ll, sizeof(ll));
	f[14] = 0x45;
	sendto(fd, f, 14 + 20 + 4, 0, (void *)&ll, sizeof(ll));	/* cut */
	return 0;
}

struct vlan_args {
	char setup[300];
	int port;
};

static int peer_vlan(void *a)
{
	struct vlan_args *v = a;
	struct send_args sa = { AF_INET, "10.5.0.1", v->port, 3, 20 };
	int ret;

	if (system(v->setup))
		return 1;
	ret = peer_send(&sa);
	if (system("ip link del vb.5"))
		return 1;
	return ret;
}

static void test_rx_policy(void)
{
	struct port p;
	struct ms_stats a, b;
	struct raw_args ra;
	int s, n, port = 8801;
	uint8_t mac[6];

	printf("== RX policy: malformed, fragments, VLAN go to the OS\n");
	port_open(&p, 64, 0);
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", port);
	reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", port, s);
	get_mac(ifname, mac);
	memcpy(ra.dmac, mac, 6);
	ra.dport = port;
	get_stats(&p, &b);
	CHECK(in_peer(peer_raw, &ra) == 0, "peer sent 1 good + 3 malformed frames");
	n = rx_wait(&p, 1, 2000);
	usleep(200000);
	n = rx_wait(&p, 1, 100);
	CHECK(n == 1, "only the good frame reached the port (%d)", n);
	rx_release(&p);
	get_stats(&p, &a);
	CHECK(a.iface[MS_STAT_RX_MALFORMED] - b.iface[MS_STAT_RX_MALFORMED] == 3,
	      "3 counted rx_malformed (%llu)",
	      (unsigned long long)(a.iface[MS_STAT_RX_MALFORMED] -
				   b.iface[MS_STAT_RX_MALFORMED]));

	b = a;
	peer_udp(AF_INET, "10.0.0.1", port, 1, 3000);	/* 3 fragments */
	{
		struct timeval tv = { 2, 0 };
		char buf2[4000];

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		CHECK(recv(s, buf2, sizeof(buf2), 0) == 3000,
		      "fragmented datagram reassembled by the OS, reached the socket");
	}
	n = rx_wait(&p, 1, 200);
	CHECK(n == 0, "port got no fragment (%d)", n);
	get_stats(&p, &a);
	CHECK(a.iface[MS_STAT_RX_FRAGMENT] - b.iface[MS_STAT_RX_FRAGMENT] == 3,
	      "3 counted rx_fragment (%llu)",
	      (unsigned long long)(a.iface[MS_STAT_RX_FRAGMENT] -
				   b.iface[MS_STAT_RX_FRAGMENT]));

	b = a;
	{
		struct vlan_args va;

		snprintf(va.setup, sizeof(va.setup),
			 "ip link add link vb name vb.5 type vlan id 5 && "
			 "ip addr add 10.5.0.2/24 dev vb.5 && "
			 "ip link set vb.5 up && ip neigh replace 10.5.0.1 lladdr "
			 "%02x:%02x:%02x:%02x:%02x:%02x dev vb.5", mac[0],
			 mac[1], mac[2], mac[3], mac[4], mac[5]);
		va.port = port;
		CHECK(in_peer(peer_vlan, &va) == 0,
		      "peer sent 3 UDP over VLAN 5");
	}
	n = rx_wait(&p, 1, 300);
	CHECK(n == 0, "port got no tagged frame (%d)", n);
	get_stats(&p, &a);
	CHECK(a.iface[MS_STAT_RX_VLAN] - b.iface[MS_STAT_RX_VLAN] >= 3,
	      "tagged frames counted rx_vlan (%llu)",
	      (unsigned long long)(a.iface[MS_STAT_RX_VLAN] -
				   b.iface[MS_STAT_RX_VLAN]));
	close(s);
	port_close(&p);
}

static void test_full(void)
{
	struct port p;
	struct ms_stats st;
	int s, n;

	printf("== full ring\n");
	port_open(&p, 8, 0);
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8101);
	reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8101, s);
	peer_udp(AF_INET, "10.0.0.1", 8101, 100, 64);
	usleep(300000);
	n = rx_wait(&p, 7, 1000);
	CHECK(n == 7, "ring holds n-1 = 7 frames (%d)", n);
	get_stats(&p, &st);
	CHECK(st.port[MS_STAT_RX_DROP_FULL] == 93, "93 drops counted (%llu)",
	      (unsigned long long)st.port[MS_STAT_RX_DROP_FULL]);
	rx_release(&p);
	peer_udp(AF_INET, "10.0.0.1", 8101, 3, 64);
	n = rx_wait(&p, 3, 2000);
	CHECK(n == 3, "ring usable again after release (%d)", n);
	close(s);
	port_close(&p);
}

static void test_ipv6(void)
{
	struct port p;
	struct ms_stats st;
	uint8_t mac[6], f[256];
	int s, n, len;

	printf("== IPv6\n");
	port_open(&p, 64, 0);
	s = bound_socket(AF_INET6, SOCK_DGRAM, "fd00::1", 8201);
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 10, 17, "fd00::1", 8201, s) == 0,
	      "register udp [fd00::1]:8201");
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 10, 17, "fd00::99", 8201, s) ==
	      EACCES, "v6 socket bound elsewhere -> EACCES");
	peer_udp(AF_INET6, "fd00::1", 8201, 4, 300);
	n = rx_wait(&p, 4, 3000);
	CHECK(n == 4, "4 IPv6 frames delivered (%d)", n);
	rx_release(&p);
	get_mac(ifname, mac);
	{
		uint8_t bc[6] = { 0x33, 0x33, 0, 0, 0, 1 };
		len = build_udp6(f, bc, mac, "fd00::1", 8201, "fd00::2", 5, 20);
		tx_put(&p, f, len);
		len = build_udp6(f, bc, mac, "fd00::1", 8202, "fd00::2", 5, 20);
		tx_put(&p, f, len);
	}
	ms_txsync(p.fd);
	get_stats(&p, &st);
	CHECK(st.port[MS_STAT_TX_SENT] == 1 &&
	      st.port[MS_STAT_TX_REJ_NOT_OWNED] == 1,
	      "IPv6 TX: one sent, one not owned");
	close(s);
	port_close(&p);
}

static void test_close(void)
{
	struct port p, q;
	int s, e;
	pid_t pid;

	printf("== close / kill releases tuples\n");
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8301);
	pid = fork();
	if (pid == 0) {
		struct port c;

		port_open(&c, 64, 0);
		if (reg_ioctl(&c, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8301, s))
			_exit(1);
		kill(getpid(), SIGSTOP);
		pause();
		_exit(0);
	}
	waitpid(pid, &e, WUNTRACED);
	port_open(&q, 64, 0);
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8301, s) ==
	      EADDRINUSE, "tuple held by the child's port");
	kill(pid, SIGKILL);
	waitpid(pid, &e, 0);
	usleep(100000);
	CHECK(reg_ioctl(&q, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8301, s) == 0,
	      "after kill -9 the tuple is free");
	port_open(&p, 64, 0);
	port_close(&p);
	close(s);
	port_close(&q);
}

static void test_vanish(void)
{
	struct port p;
	struct pollfd pfd;
	int s, r;

	printf("== interface vanishes\n");
	CHECK(port_open(&p, 64, 0) == 0, "port open");
	s = bound_socket(AF_INET, SOCK_DGRAM, "10.0.0.1", 8401);
	reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8401, s);
	r = system("ip link del va");
	CHECK(r == 0, "ip link del va");
	pfd.fd = p.fd;
	pfd.events = POLLIN;
	r = poll(&pfd, 1, 1000);
	CHECK(r == 1 && (pfd.revents & POLLERR), "poll -> POLLERR");
	CHECK(ms_txsync(p.fd) == -ENXIO, "TXSYNC -> ENXIO");
	CHECK(reg_ioctl(&p, MS_IOC_REGISTER, 2, 17, "10.0.0.1", 8401, s) ==
	      ENXIO, "REGISTER -> ENXIO");
	close(s);
	port_close(&p);
	CHECK(1, "dead port closed");
	{
		/* the module's socket reference is gone: the port is free */
		int b = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons(8401) };

		usleep(100000);
		CHECK(bind(b, (void *)&sa, sizeof(sa)) == 0,
		      "UDP port 8401 can be bound again (socket reference dropped)");
		close(b);
	}
}

int main(int argc, char **argv)
{
	int i, all;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		all = !strcmp(argv[i], "all");
		if (!strcmp(argv[i], "attach"))
			CHECK(if_ioctl(MS_IOC_ATTACH, ifname) == 0, "attach %s",
			      ifname);
		if (!strcmp(argv[i], "attach_ebusy"))
			CHECK(if_ioctl(MS_IOC_ATTACH, ifname) == EBUSY,
			      "attach to a bridge port -> EBUSY");
		if (!strcmp(argv[i], "detach"))
			CHECK(if_ioctl(MS_IOC_DETACH, ifname) == 0, "detach %s",
			      ifname);
		if (all || !strcmp(argv[i], "reg"))
			test_reg();
		if (all || !strcmp(argv[i], "rx"))
			test_rx();
		if (all || !strcmp(argv[i], "tx"))
			test_tx();
		if (all || !strcmp(argv[i], "gso"))
			test_gso_tcp();
		if (all || !strcmp(argv[i], "tcp"))
			test_tcp_gso();
		if (all || !strcmp(argv[i], "policy"))
			test_rx_policy();
		if (all || !strcmp(argv[i], "full"))
			test_full();
		if (all || !strcmp(argv[i], "ipv6"))
			test_ipv6();
		if (all || !strcmp(argv[i], "close"))
			test_close();
		if (!strcmp(argv[i], "flood"))
			peer_udp(AF_INET, "10.0.0.1", 7777, 20000, 64);
		if (!strcmp(argv[i], "vanish"))
			test_vanish();
	}
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
