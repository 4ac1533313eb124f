// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_scale - many registered UDP 3-tuples over many ports, drained busily:
 * the receiver behind the RX cost against table size and port count.
 *
 *   ms_scale -i IFNAME -a ADDR -p BASEPORT -T TUPLES [-P PORTS] [-A NADDRS]
 *            [-s SLOTS] [-S SLOTS] [-c CPU] [-O]
 *
 * Tuple k (0 <= k < TUPLES) is UDP (ADDR + k / per_addr, BASEPORT +
 * k % per_addr), per_addr = ceil(TUPLES / NADDRS): NADDRS consecutive
 * addresses from ADDR (the last octet counts up), each with the same run
 * of ports.  Every tuple is proven by a socket bound to it.
 *
 * Default: PORTS MultiStack ports on IFNAME, tuple k registered to port
 * k % PORTS (at most MS_MAX_REGS each), tuple 0 first; port 0 has -s SLOTS
 * (1024) slots a ring, the others -S SLOTS (256).  The receiver busy-polls
 * every port with MS_IOC_RXSYNC and reads each frame's UDP destination
 * port, as an application would.
 * -O: the OS baseline: the same bound sockets (4 MiB receive buffers),
 * nothing registered, drained busily through epoll (timeout 0) and
 * recvmmsg.
 *
 * The harness stops it (SIGSTOP) while it sends a burst that the rings or
 * buffers hold, and lets it drain between bursts (SIGCONT).  Prints
 * "ready" on stderr once everything is registered, then drains until
 * SIGTERM and prints
 *   packets=N drop_full=D sockets=S seconds=T
 * drop_full sums the ports' MS_STAT_RX_DROP_FULL deltas (-O: the
 * RcvbufErrors delta of /proc/net/snmp).  Exit 2 on bad arguments, 3 when
 * the module or a resource is missing (reason on stderr).
 */
#include "msport.h"

#include <sys/epoll.h>
#include <sys/resource.h>

#define VLEN 64
#define BUFSZ 2048

static uint64_t udp_rcvbuf_errors(void)
{
	char line[1024], hdr[1024];
	FILE *f = fopen("/proc/net/snmp", "r");
	uint64_t val = 0;

	if (!f)
		return 0;
	while (fgets(hdr, sizeof(hdr), f)) {
		char *h, *v, *hs, *vs;

		if (strncmp(hdr, "Udp:", 4) || !fgets(line, sizeof(line), f))
			continue;
		h = strtok_r(hdr, " \n", &hs);
		v = strtok_r(line, " \n", &vs);
		while (h && v) {
			if (!strcmp(h, "RcvbufErrors"))
				val = strtoull(v, NULL, 10);
			h = strtok_r(NULL, " \n", &hs);
			v = strtok_r(NULL, " \n", &vs);
		}
		break;
	}
	fclose(f);
	return val;
}

static int bind_udp(struct in_addr a, uint16_t port, int rcvbuf)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port), .sin_addr = a };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	if ((rcvbuf && setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
				  sizeof(rcvbuf))) ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin))) {
		int e = errno;

		close(s);
		return -e;
	}
	return s;
}

static int do_register(struct msport *p, int s, struct in_addr a,
		       uint16_t port)
{
	struct ms_reg_req r;

	memset(&r, 0, sizeof(r));
	r.version = MS_ABI_VERSION;
	r.family = MS_FAMILY_INET;
	r.proto = MS_PROTO_UDP;
	r.port = port;
	r.sockfd = s;
	memcpy(r.addr, &a, 4);
	return ioctl(p->fd, MS_IOC_REGISTER, &r) ? -errno : 0;
}

static uint64_t drain_port(struct msport *p, uint64_t *junk)
{
	struct ms_netmap_ring *r = p->rx;
	uint32_t head = r->head, tail = ms_ring_tail(r);
	uint64_t got = 0;

	while (head != tail) {
		struct ms_netmap_slot *s = ms_ring_slot(r, head);
		const uint8_t *f = ms_ring_buf(r, s->buf_idx);
		uint16_t dport;

		memcpy(&dport, f + 14 + 20 + 2, 2);
		*junk += dport;
		head = ms_ring_next(r, head);
		got++;
	}
	ms_ring_advance(r, head);
	return got;
}

static uint64_t drop_full(struct msport *ports, int n)
{
	struct ms_stats st;
	uint64_t d = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (msport_stats(&ports[i], &st))
			die("MS_IOC_STATS");
		d += st.port[MS_STAT_RX_DROP_FULL];
	}
	return d;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *addr = NULL;
	int base = 0, tuples = 0, nports = 1, naddrs = 1, cpu = -1, os = 0;
	int opt, i, k, per_addr, ep = -1;
	uint32_t slots = 1024, other_slots = 256;
	uint64_t pk = 0, junk = 0, d0, d1;
	struct in_addr a0;
	struct msport *ports = NULL;
	struct rlimit rl;
	double t0;
	int *socks;

	while ((opt = getopt(argc, argv, "i:a:p:T:P:A:s:S:c:O")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'a': addr = optarg; break;
		case 'p': base = atoi(optarg); break;
		case 'T': tuples = atoi(optarg); break;
		case 'P': nports = atoi(optarg); break;
		case 'A': naddrs = atoi(optarg); break;
		case 's': slots = (uint32_t)atoi(optarg); break;
		case 'S': other_slots = (uint32_t)atoi(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'O': os = 1; break;
		default:
			fprintf(stderr, "usage: see the comment in bench/ms_scale.c\n");
			return 2;
		}
	}
	if (!addr || inet_pton(AF_INET, addr, &a0) != 1 || base <= 0 ||
	    tuples <= 0 || nports <= 0 || naddrs <= 0 || (!os && !ifname)) {
		fprintf(stderr, "ms_scale: need -i IFNAME -a ADDR -p BASEPORT "
			"-T TUPLES (positive)\n");
		return 2;
	}
	per_addr = (tuples + naddrs - 1) / naddrs;
	if (base + per_addr - 1 > 65535) {
		fprintf(stderr, "ms_scale: %d tuples over %d addresses from "
			"port %d pass port 65535\n", tuples, naddrs, base);
		return 2;
	}
	if (!os && (tuples + nports - 1) / nports > MS_MAX_REGS) {
		fprintf(stderr, "ms_scale: %d tuples over %d ports: more than "
			"MS_MAX_REGS (%d) per port\n", tuples, nports, MS_MAX_REGS);
		return 2;
	}
	pin_cpu(cpu);
	stop_on_signals();

	/* one descriptor per proof, plus the ports' */
	rl.rlim_cur = rl.rlim_max = (rlim_t)tuples + (rlim_t)nports + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		fprintf(stderr, "ms_scale: RLIMIT_NOFILE %llu: %s\n",
			(unsigned long long)rl.rlim_cur, strerror(errno));
		return 3;
	}
	socks = calloc((size_t)tuples, sizeof(*socks));
	if (!socks)
		die("calloc");
	if (os) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0)
			die("epoll_create1");
	} else {
		ports = calloc((size_t)nports, sizeof(*ports));
		if (!ports)
			die("calloc");
		for (i = 0; i < nports; i++) {
			int e = msport_open(&ports[i], ifname,
					    i ? other_slots : slots);

			if (e) {
				fprintf(stderr, "ms_scale: port %d on %s: %s\n", i,
					ifname, strerror(-e));
				return 3;
			}
		}
	}
	for (k = 0; k < tuples; k++) {
		struct in_addr a = { htonl(ntohl(a0.s_addr) +
					   (uint32_t)(k / per_addr)) };
		uint16_t port = (uint16_t)(base + k % per_addr);
		int e;

		socks[k] = bind_udp(a, port, os ? 4 << 20 : 0);
		if (socks[k] < 0) {
			fprintf(stderr, "ms_scale: bind udp %s:%d (tuple %d): %s\n",
				inet_ntoa(a), port, k, strerror(-socks[k]));
			return 3;
		}
		if (os) {
			struct epoll_event ev = { .events = EPOLLIN,
						  .data.fd = socks[k] };

			e = epoll_ctl(ep, EPOLL_CTL_ADD, socks[k], &ev) ? -errno : 0;
		} else {
			e = do_register(&ports[k % nports], socks[k], a, port);
		}
		if (e) {
			fprintf(stderr, "ms_scale: %s udp %s:%d (tuple %d): %s\n",
				os ? "epoll" : "register", inet_ntoa(a), port, k,
				strerror(-e));
			return 3;
		}
	}
	fprintf(stderr, "ms_scale: ready: %d udp tuples over %d addresses, %s\n",
		tuples, naddrs, os ? "OS sockets (epoll)" : "ports");
	if (os) {
		static struct mmsghdr msgs[VLEN];
		static struct iovec iov[VLEN];
		static uint8_t bufs[VLEN][BUFSZ];
		struct epoll_event evs[64];

		for (i = 0; i < VLEN; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = BUFSZ;
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		d0 = udp_rcvbuf_errors();
		t0 = now_s();
		while (!stop_flag) {
			int n = epoll_wait(ep, evs, 64, 0);

			for (i = 0; i < n; i++) {
				int got;

				while ((got = recvmmsg(evs[i].data.fd, msgs, VLEN,
						       MSG_DONTWAIT, NULL)) > 0)
					pk += (uint64_t)got;
			}
		}
		d1 = udp_rcvbuf_errors();
	} else {
		d0 = drop_full(ports, nports);
		t0 = now_s();
		while (!stop_flag) {
			for (i = 0; i < nports; i++) {
				ms_rxsync(ports[i].fd);
				pk += drain_port(&ports[i], &junk);
			}
		}
		d1 = drop_full(ports, nports);
	}
	printf("packets=%llu drop_full=%llu sockets=%d seconds=%.6f junk=%llu\n",
	       (unsigned long long)pk, (unsigned long long)(d1 - d0), tuples,
	       now_s() - t0, (unsigned long long)(junk & 1));
	return 0;
}
