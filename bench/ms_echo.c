// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_echo - a UDP echo on a MultiStack port: every datagram that reaches
 * the port's RX ring goes back out of its TX ring, addresses swapped.
 *
 *   ms_echo -i IFNAME -a ADDR -p PORT [-c CPU] [-s SLOTS]
 *
 * The port registers UDP ADDR:PORT (a bound UDP socket as proof).  It
 * sleeps in poll(POLLIN) (one wakeup per datagram, as an idle server does),
 * then for each frame swaps the Ethernet, IPv4 and UDP source and
 * destination (the checksums stay valid: each sums both fields), copies it
 * into a TX slot and sends the batch with MS_IOC_TXSYNC.  Frames that are
 * not IPv4/UDP to PORT, or carry IP options, are counted and dropped.
 * Prints "ready" on stderr once registered; on SIGTERM prints
 *   packets=N other=X rejected=R
 * (rejected: the port's TX rejections, which should stay 0).  Exit 2 on
 * bad arguments, 3 when the module or the registration fails.
 */
#include "msport.h"

static void swap(uint8_t *a, uint8_t *b, size_t n)
{
	uint8_t t[6];

	memcpy(t, a, n);
	memcpy(a, b, n);
	memcpy(b, t, n);
}

/* Echoes what the RX ring holds; returns the frames put in the TX ring. */
static uint32_t echo(struct msport *p, uint16_t port_be, uint64_t *other)
{
	struct ms_netmap_ring *rx = p->rx, *tx = p->tx;
	uint32_t rh = rx->head, rt = ms_ring_tail(rx);
	uint32_t th = tx->head, tt = ms_ring_tail(tx), n = 0;

	for (; rh != rt && th != tt; rh = ms_ring_next(rx, rh)) {
		struct ms_netmap_slot *rs = ms_ring_slot(rx, rh);
		struct ms_netmap_slot *ts = ms_ring_slot(tx, th);
		const uint8_t *f = ms_ring_buf(rx, rs->buf_idx);
		uint8_t *o = ms_ring_buf(tx, ts->buf_idx);
		uint16_t dport;

		memcpy(&dport, f + 14 + 20 + 2, 2);
		if (rs->len < 42 || f[12] != 0x08 || f[13] != 0x00 ||
		    f[14] != 0x45 || f[23] != 17 || dport != port_be ||
		    rs->len > p->info.buf_size) {
			(*other)++;
			continue;
		}
		memcpy(o, f, rs->len);
		swap(o, o + 6, 6);			/* Ethernet */
		swap(o + 14 + 12, o + 14 + 16, 4);	/* IPv4 */
		swap(o + 34, o + 36, 2);		/* UDP ports */
		ts->len = rs->len;
		th = ms_ring_next(tx, th);
		n++;
	}
	ms_ring_advance(rx, rh);
	ms_ring_advance(tx, th);
	return n;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *addr = NULL;
	int port = 0, cpu = -1, opt, s, e;
	uint32_t slots = 256;
	uint64_t pk = 0, other = 0;
	struct ms_stats st;
	struct pollfd pfd;
	struct msport p;

	while ((opt = getopt(argc, argv, "i:a:p:c:s:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 's': slots = (uint32_t)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: see the comment in bench/ms_echo.c\n");
			return 2;
		}
	}
	if (!ifname || !addr || port <= 0 || port > 65535) {
		fprintf(stderr, "ms_echo: need -i IFNAME -a ADDR -p PORT\n");
		return 2;
	}
	pin_cpu(cpu);
	stop_on_signals();
	e = msport_open(&p, ifname, slots);
	if (e) {
		fprintf(stderr, "ms_echo: port on %s: %s\n", ifname, strerror(-e));
		return 3;
	}
	s = msport_claim(&p, 1, addr, (uint16_t)port);
	if (s < 0) {
		fprintf(stderr, "ms_echo: register udp %s:%d: %s\n", addr, port,
			strerror(-s));
		return 3;
	}
	fprintf(stderr, "ms_echo: ready on %s udp %s:%d\n", ifname, addr, port);
	pfd.fd = p.fd;
	pfd.events = POLLIN;
	while (!stop_flag) {
		uint32_t n;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		n = echo(&p, htons((uint16_t)port), &other);
		e = n ? ms_txsync(p.fd) : 0;
		if (e && e != -EINTR) {
			errno = -e;
			die("MS_IOC_TXSYNC");
		}
		pk += n;
	}
	if (msport_stats(&p, &st))
		die("MS_IOC_STATS");
	printf("packets=%llu other=%llu rejected=%llu\n",
	       (unsigned long long)pk, (unsigned long long)other,
	       (unsigned long long)(st.port[MS_STAT_TX_REJ_NOT_OWNED] +
				    st.port[MS_STAT_TX_REJ_OTHER_PORT] +
				    st.port[MS_STAT_TX_REJ_BAD_MAC] +
				    st.port[MS_STAT_TX_REJ_MALFORMED]));
	return 0;
}
