// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_rx - RX through a MultiStack port: frames delivered by multistack.ko
 * into the port's RX ring, drained by polling the port's descriptor.
 *
 *   ms_rx -i IFNAME -a ADDR -p PORT [-t SECONDS] [-w WARMUP] [-W WAIT]
 *         [-c CPU] [-s SLOTS] [-n EXTRA_PORTS] [-b]
 *   ms_rx -i IFNAME -I [-s SLOTS]      print the port's memory and exit
 *
 * The port registers UDP ADDR:PORT (proving ownership with a bound UDP
 * socket).  -n opens that many more ports on the interface, each holding
 * one more UDP 3-tuple (PORT+1 ...), so that the lookup table is not
 * trivially small.  -b busy-polls with MS_IOC_RXSYNC instead of sleeping in
 * poll().  SIGTERM ends the window early.  Every frame is read (its UDP
 * destination port is checked), as an application would.  Prints
 *   packets=N bytes=B seconds=S drop_full=D mem_size=M other=X offered=O
 *   cpu_busy=C batches=K ipis=I
 * bytes are whole Ethernet frame bytes; batches counts the drains that
 * found frames (packets / batches: frames per wakeup); ipis the
 * function-call IPIs CPU -c took in the window (cpu_ipis); drop_full is
 * the port's MS_STAT_RX_DROP_FULL delta over the window; other counts frames in the
 * ring not addressed to PORT; offered is the rx_packets delta of IFNAME
 * over the window (what reached the interface).
 * Exit 3 when the module or a feature is missing (reason on stderr).
 * cpu_busy is how many seconds CPU -c (the system under test) was busy
 * during the window, from /proc/stat: cpu_busy / packets is the cost of
 * one packet on that CPU, whoever spent it (softirq, syscall, user).
 */
#include "msport.h"

static int drain(struct msport *p, uint16_t port_be, uint64_t *pk,
		 uint64_t *by, uint64_t *other)
{
	struct ms_netmap_ring *r = p->rx;
	uint32_t head = r->head, tail = ms_ring_tail(r);
	int got = 0;

	while (head != tail) {
		struct ms_netmap_slot *s = ms_ring_slot(r, head);
		const uint8_t *f = ms_ring_buf(r, s->buf_idx);
		uint16_t dport;

		memcpy(&dport, f + 14 + 20 + 2, 2);
		if (dport == port_be) {
			(*pk)++;
			*by += s->len;
		} else {
			(*other)++;
		}
		head = ms_ring_next(r, head);
		got++;
	}
	ms_ring_advance(r, head);
	return got;
}

int main(int argc, char **argv)
{
	struct cpu_times c0, c1;
	double secs = 2, warm = 0.5, wait_first = 10, t0, tend, t = 0;
	const char *ifname = NULL, *addr = NULL;
	int port = 0, cpu = -1, extra = 0, busy = 0, info_only = 0, opt, i, s;
	uint32_t slots = 0;
	uint64_t pk = 0, by = 0, other = 0, junk = 0, batches = 0, d0, d1, o0, o1;
	unsigned long long i0, i1;
	struct msport p, *xp;
	struct ms_stats st;
	struct pollfd pfd;

	while ((opt = getopt(argc, argv, "i:a:p:t:w:W:c:s:n:bI")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 'W': wait_first = atof(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 's': slots = (uint32_t)atoi(optarg); break;
		case 'n': extra = atoi(optarg); break;
		case 'b': busy = 1; break;
		case 'I': info_only = 1; break;
		default:
			fprintf(stderr, "usage: see the comment in bench/ms_rx.c\n");
			return 2;
		}
	}
	if (!ifname || (!info_only && (!addr || !port))) {
		fprintf(stderr, "ms_rx: need -i IFNAME -a ADDR -p PORT\n");
		return 2;
	}
	pin_cpu(cpu);
	stop_on_signals();
	i = msport_open(&p, ifname, slots);
	if (i) {
		fprintf(stderr, "ms_rx: port on %s: %s\n", ifname, strerror(-i));
		return 3;
	}
	if (info_only) {
		printf("mem_size=%u tx_slots=%u rx_slots=%u buf_size=%u nbufs=%u\n",
		       p.info.mem_size, p.info.tx_slots, p.info.rx_slots,
		       p.info.buf_size, p.nifp->ni_nbufs);
		return 0;
	}
	s = msport_claim(&p, 1, addr, (uint16_t)port);
	if (s < 0) {
		fprintf(stderr, "ms_rx: register udp %s:%d: %s\n", addr, port,
			strerror(-s));
		return 3;
	}
	xp = calloc(extra ? extra : 1, sizeof(*xp));
	for (i = 0; i < extra; i++) {
		int e = msport_open(&xp[i], ifname, 64);

		if (!e)
			e = msport_claim(&xp[i], 1, addr, (uint16_t)(port + 1 + i));
		if (e < 0) {
			fprintf(stderr, "ms_rx: extra port %d: %s\n", i, strerror(-e));
			return 3;
		}
	}
	fprintf(stderr, "ms_rx: ready on %s udp %s:%d (+%d ports)\n", ifname,
		addr, port, extra);

	pfd.fd = p.fd;
	pfd.events = POLLIN;
	uint16_t pbe = htons((uint16_t)port);

	/* first frame */
	t0 = now_s();
	for (;;) {
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			die("poll");
		if (drain(&p, pbe, &junk, &junk, &junk))
			break;
		if (now_s() - t0 > wait_first) {
			printf("packets=0 bytes=0 seconds=0 drop_full=0 mem_size=%u\n",
			       p.info.mem_size);
			return 0;
		}
	}
	t0 = now_s();
	while (now_s() - t0 < warm) {
		poll(&pfd, 1, 100);
		drain(&p, pbe, &junk, &junk, &junk);
	}
	if (msport_stats(&p, &st))
		die("MS_IOC_STATS");
	d0 = st.port[MS_STAT_RX_DROP_FULL];
	c0 = cpu_times(cpu);
	i0 = cpu_ipis(cpu);
	o0 = dev_rx_packets(ifname);
	t0 = now_s();
	tend = t0 + secs;
	while ((t = now_s()) < tend && !stop_flag) {
		if (busy)
			ms_rxsync(p.fd);
		else if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			die("poll");
		if (drain(&p, pbe, &pk, &by, &other))
			batches++;
	}
	o1 = dev_rx_packets(ifname);
	i1 = cpu_ipis(cpu);
	c1 = cpu_times(cpu);
	if (msport_stats(&p, &st))
		die("MS_IOC_STATS");
	d1 = st.port[MS_STAT_RX_DROP_FULL];
	printf("packets=%llu bytes=%llu seconds=%.6f drop_full=%llu "
	       "mem_size=%u other=%llu offered=%llu cpu_busy=%.4f "
	       "batches=%llu ipis=%llu\n",
	       (unsigned long long)pk, (unsigned long long)by, t - t0,
	       (unsigned long long)(d1 - d0), p.info.mem_size,
	       (unsigned long long)other, (unsigned long long)(o1 - o0),
	       cpu_busy_s(c0, c1), (unsigned long long)batches, i1 - i0);
	return 0;
}
