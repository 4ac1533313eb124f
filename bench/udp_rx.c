// SPDX-License-Identifier: BSD-2-Clause
/*
 * udp_rx - the OS-path RX baseline: a UDP socket drained with recvmmsg().
 *
 *   udp_rx -a ADDR -p PORT [-t SECONDS] [-w WARMUP] [-W WAIT] [-c CPU]
 *          [-i IFNAME] [-r RCVBUF] [-b]
 *
 * Waits (at most WAIT seconds) for the first datagram, discards WARMUP
 * seconds of traffic, then counts datagrams for SECONDS and prints
 *   packets=N bytes=B seconds=S rcvbuf_errors=E offered=O
 * (bytes are UDP payload bytes; rcvbuf_errors is the delta of the
 * RcvbufErrors counter of /proc/net/snmp over the window: datagrams the
 * kernel dropped because this socket was full).  Exit 0 with packets=0 when
 * nothing arrived.  -b busy-polls (recvmmsg with MSG_DONTWAIT) instead of
 * sleeping until a datagram arrives.  SIGTERM ends the window early.  offered is the rx_packets delta of IFNAME over the window
 * (what reached the interface; 0 without -i).
 * batches counts the recvmmsg() calls that returned datagrams (packets /
 * batches: datagrams per wakeup); ipis the function-call IPIs CPU -c took
 * in the window (cpu_ipis).
 * cpu_busy is how many seconds CPU -c (the system under test) was busy
 * during the window, from /proc/stat: cpu_busy / packets is the cost of
 * one packet on that CPU, whoever spent it (softirq, syscall, user).
 */
#include "common.h"

#include <sys/time.h>

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
		if (strncmp(hdr, "Udp:", 4) || !fgets(line, sizeof(line), f))
			continue;
		/* header and value lines: find the RcvbufErrors column */
		char *hs, *vs, *h = strtok_r(hdr, " \n", &hs);
		char *v = strtok_r(line, " \n", &vs);

		while (h && v) {
			if (!strcmp(h, "RcvbufErrors")) {
				val = strtoull(v, NULL, 10);
				break;
			}
			h = strtok_r(NULL, " \n", &hs);
			v = strtok_r(NULL, " \n", &vs);
		}
		break;
	}
	fclose(f);
	return val;
}

int main(int argc, char **argv)
{
	struct cpu_times c0, c1;
	static char bufs[VLEN][BUFSZ];
	struct mmsghdr msgs[VLEN];
	struct iovec iov[VLEN];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	double secs = 2, warm = 0.5, wait_first = 10, t0, tend, t;
	uint64_t pkts = 0, bytes = 0, batches = 0, e0, e1;
	unsigned long long i0, i1;
	const char *addr = NULL, *ifname = NULL;
	uint64_t o0, o1;
	int port = 0, cpu = -1, opt, s, i, n, rcvbuf = 8 << 20, busy = 0;

	while ((opt = getopt(argc, argv, "a:p:t:w:W:c:i:r:b")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 'W': wait_first = atof(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'i': ifname = optarg; break;
		case 'r': rcvbuf = atoi(optarg); break;
		case 'b': busy = 1; break;
		default:
			fprintf(stderr, "usage: udp_rx -a ADDR -p PORT [-t S] [-w S] [-W S] [-c CPU] [-i IF] [-r RCVBUF] [-b]\n");
			return 2;
		}
	}
	if (!addr || !port || inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		errno = 0;
		die("udp_rx: need -a IPv4-ADDR -p PORT");
	}
	pin_cpu(cpu);
	stop_on_signals();
	sin.sin_port = htons(port);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		die("socket");
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)))
		die("bind %s:%d", addr, port);
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < VLEN; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = BUFSZ;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	fprintf(stderr, "udp_rx: ready on %s:%d\n", addr, port);

	/* first datagram */
	t0 = now_s();
	for (;;) {
		n = recvmmsg(s, msgs, VLEN, MSG_WAITFORONE, NULL);
		if (n > 0)
			break;
		if (now_s() - t0 > wait_first) {
			printf("packets=0 bytes=0 seconds=0 rcvbuf_errors=0\n");
			return 0;
		}
	}
	/* warm-up */
	t0 = now_s();
	while (now_s() - t0 < warm)
		recvmmsg(s, msgs, VLEN, MSG_DONTWAIT, NULL);
	/* measurement window */
	e0 = udp_rcvbuf_errors();
	c0 = cpu_times(cpu);
	i0 = cpu_ipis(cpu);
	o0 = dev_rx_packets(ifname);
	t0 = now_s();
	tend = t0 + secs;
	for (;;) {
		n = recvmmsg(s, msgs, VLEN, busy ? MSG_DONTWAIT : MSG_WAITFORONE,
			     NULL);
		t = now_s();
		if (n > 0) {
			pkts += n;
			batches++;
			for (i = 0; i < n; i++)
				bytes += msgs[i].msg_len;
		}
		if (t >= tend || stop_flag)
			break;
	}
	o1 = dev_rx_packets(ifname);
	i1 = cpu_ipis(cpu);
	c1 = cpu_times(cpu);
	e1 = udp_rcvbuf_errors();
	printf("packets=%llu bytes=%llu seconds=%.6f rcvbuf_errors=%llu "
	       "offered=%llu cpu_busy=%.4f batches=%llu ipis=%llu\n",
	       (unsigned long long)pkts, (unsigned long long)bytes, t - t0,
	       (unsigned long long)(e1 - e0), (unsigned long long)(o1 - o0),
	       cpu_busy_s(c0, c1), (unsigned long long)batches, i1 - i0);
	return 0;
}
