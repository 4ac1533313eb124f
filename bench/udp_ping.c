// SPDX-License-Identifier: BSD-2-Clause
/*
 * udp_ping - round-trip times of sequential UDP pings to an echo server.
 *
 *   udp_ping -a ADDR -p PORT [-n COUNT] [-w WARMUP] [-l LEN] [-c CPU]
 *            [-W TIMEOUT_MS]
 *
 * Sends WARMUP pings (not counted), then COUNT, one at a time: each carries
 * its sequence number, and the next leaves once its echo is back or
 * TIMEOUT_MS passed (counted as lost; late echoes are skipped by their
 * sequence number).  LEN is the UDP payload length (at least 8).  Prints
 *   count=N lost=L min_us=.. p50_us=.. p90_us=.. p99_us=.. max_us=..
 *   mean_us=..
 * Percentiles are nearest-rank over the echoes received.  Exit 2 on bad
 * arguments, 3 when nothing came back.
 */
#include "common.h"

#include <poll.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double rank(const double *v, int n, double q)
{
	int i = (int)(q * n + 0.999999) - 1;

	return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const char *addr = NULL;
	int port = 0, count = 1000, warm = 50, len = 18, cpu = -1;
	int timeout_ms = 1000, opt, s, i, got = 0, lost = 0;
	uint8_t buf[2048], in[2048];
	double *rtt, sum = 0;

	while ((opt = getopt(argc, argv, "a:p:n:w:l:c:W:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		case 'w': warm = atoi(optarg); break;
		case 'l': len = atoi(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'W': timeout_ms = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: see the comment in bench/udp_ping.c\n");
			return 2;
		}
	}
	if (!addr || port <= 0 || port > 65535 || count <= 0 || warm < 0 ||
	    len < 8 || len > (int)sizeof(buf) || timeout_ms <= 0 ||
	    inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "udp_ping: need -a ADDR -p PORT, COUNT > 0, "
			"8 <= LEN <= %zu\n", sizeof(buf));
		return 2;
	}
	pin_cpu(cpu);
	sin.sin_port = htons((uint16_t)port);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)))
		die("udp_ping: connect %s:%d", addr, port);
	rtt = calloc((size_t)count, sizeof(*rtt));
	if (!rtt)
		die("calloc");
	memset(buf, 0x5a, sizeof(buf));
	for (i = -warm; i < count; i++) {
		uint64_t seq = (uint64_t)(i + warm), echoed;
		double t0 = now_s(), left;
		struct pollfd pfd = { .fd = s, .events = POLLIN };

		memcpy(buf, &seq, 8);
		if (send(s, buf, (size_t)len, 0) != len)
			die("send");
		for (;;) {
			ssize_t n;

			left = t0 + timeout_ms / 1e3 - now_s();
			if (left <= 0 || poll(&pfd, 1, (int)(left * 1e3) + 1) <= 0) {
				if (i >= 0)
					lost++;
				break;
			}
			n = recv(s, in, sizeof(in), MSG_DONTWAIT);
			if (n < 8)
				continue;	/* ICMP error or a runt */
			memcpy(&echoed, in, 8);
			if (echoed != seq)
				continue;	/* a late echo */
			if (i >= 0) {
				rtt[got] = (now_s() - t0) * 1e6;
				sum += rtt[got++];
			}
			break;
		}
	}
	if (!got) {
		fprintf(stderr, "udp_ping: no echo from %s:%d\n", addr, port);
		return 3;
	}
	qsort(rtt, (size_t)got, sizeof(*rtt), cmp_double);
	printf("count=%d lost=%d min_us=%.1f p50_us=%.1f p90_us=%.1f "
	       "p99_us=%.1f max_us=%.1f mean_us=%.1f\n", got, lost, rtt[0],
	       rank(rtt, got, 0.5), rank(rtt, got, 0.9), rank(rtt, got, 0.99),
	       rtt[got - 1], sum / got);
	return 0;
}
