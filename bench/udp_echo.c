// SPDX-License-Identifier: BSD-2-Clause
/*
 * udp_echo - the OS-path echo baseline: a UDP socket that sends every
 * datagram back to where it came from.
 *
 *   udp_echo -a ADDR -p PORT [-c CPU]
 *
 * Blocks in recvfrom() (one wakeup per datagram, as an idle server does).
 * Prints "ready" on stderr once bound; on SIGTERM prints
 *   packets=N
 * the datagrams echoed.  Exit 2 on bad arguments, 3 when it cannot bind.
 */
#include "common.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET }, peer;
	const char *addr = NULL;
	int port = 0, cpu = -1, opt, s;
	uint64_t pk = 0;
	uint8_t buf[2048];

	while ((opt = getopt(argc, argv, "a:p:c:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: udp_echo -a ADDR -p PORT [-c CPU]\n");
			return 2;
		}
	}
	if (!addr || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "udp_echo: need -a ADDR -p PORT\n");
		return 2;
	}
	pin_cpu(cpu);
	stop_on_signals();
	sin.sin_port = htons((uint16_t)port);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sin, sizeof(sin))) {
		fprintf(stderr, "udp_echo: bind udp %s:%d: %s\n", addr, port,
			strerror(errno));
		return 3;
	}
	fprintf(stderr, "udp_echo: ready on udp %s:%d\n", addr, port);
	while (!stop_flag) {
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(s, buf, sizeof(buf), 0,
				     (struct sockaddr *)&peer, &plen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvfrom");
		}
		if (sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&peer,
			   plen) == n)
			pk++;
	}
	printf("packets=%llu\n", (unsigned long long)pk);
	return 0;
}
