// SPDX-License-Identifier: BSD-2-Clause
/*
 * pkt_tx - the OS-path TX baseline: the same UDP frame sent through a raw
 * AF_PACKET socket with sendmmsg().
 *
 *   pkt_tx -i IFNAME -a SRC -p SPORT -d DST -D DPORT -M DSTMAC -l LEN
 *          [-t SECONDS] [-w WARMUP] [-c CPU] [-B BATCH] [-q]
 *
 * -q sets PACKET_QDISC_BYPASS.  Prints
 *   packets=N seconds=S sent=T dev_dropped=X
 * packets is the number of frames the interface's driver took over the
 * window (tx_packets + tx_dropped deltas; dev_dropped says how many the
 * veth dropped because its peer's backlog was full); sent is what
 * sendmmsg() reported as sent.
 * cpu_busy is how many seconds CPU -c (the system under test) was busy
 * during the window, from /proc/stat: cpu_busy / packets is the cost of
 * one packet on that CPU, whoever spent it (softirq, syscall, user).
 */
#include "common.h"

#include <linux/if_packet.h>
#include <linux/if_ether.h>

#define MAXB 1024

int main(int argc, char **argv)
{
	struct cpu_times c0, c1;
	const char *ifname = NULL, *src = NULL, *dst = NULL, *dmac_s = NULL;
	int sport = 0, dport = 0, cpu = -1, len = 0, bypass = 0, opt, s, n;
	uint32_t batch = 256, i;
	double secs = 2, warm = 0.3, t0, t = 0, tend;
	static uint8_t frame[2048];
	static struct mmsghdr msgs[MAXB];
	struct iovec iov;
	uint8_t smac[6], dmac[6];
	struct in_addr sa, da;
	struct sockaddr_ll sll;
	uint64_t sent = 0, p0, p1, x0, x1;

	while ((opt = getopt(argc, argv, "i:a:p:d:D:M:l:t:w:c:B:q")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'a': src = optarg; break;
		case 'p': sport = atoi(optarg); break;
		case 'd': dst = optarg; break;
		case 'D': dport = atoi(optarg); break;
		case 'M': dmac_s = optarg; break;
		case 'l': len = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'B': batch = (uint32_t)atoi(optarg); break;
		case 'q': bypass = 1; break;
		default:
			fprintf(stderr, "usage: see the comment in bench/pkt_tx.c\n");
			return 2;
		}
	}
	if (!ifname || !src || !dst || !dmac_s || !sport || !dport ||
	    len < 42 || len > (int)sizeof(frame) || batch < 1 || batch > MAXB ||
	    inet_pton(AF_INET, src, &sa) != 1 ||
	    inet_pton(AF_INET, dst, &da) != 1 || parse_mac(dmac_s, dmac)) {
		fprintf(stderr, "pkt_tx: bad arguments (see bench/pkt_tx.c)\n");
		return 2;
	}
	pin_cpu(cpu);
	if_mac(ifname, smac);
	build_udp_frame(frame, (size_t)len, dmac, smac, sa, (uint16_t)sport,
			da, (uint16_t)dport);
	/* protocol 0: this socket sends only, it receives nothing */
	s = socket(AF_PACKET, SOCK_RAW, 0);
	if (s < 0)
		die("socket(AF_PACKET)");
	if (bypass && setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &bypass,
				 sizeof(bypass)))
		die("PACKET_QDISC_BYPASS");
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex)
		die("if_nametoindex %s", ifname);
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind AF_PACKET");
	iov.iov_base = frame;
	iov.iov_len = (size_t)len;
	for (i = 0; i < batch; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	fprintf(stderr, "pkt_tx: ready on %s %s:%d -> %s:%d, %d B\n", ifname,
		src, sport, dst, dport, len);
	t0 = now_s();
	while (now_s() - t0 < warm)
		sendmmsg(s, msgs, batch, 0);
	p0 = dev_tx_packets(ifname);
	c0 = cpu_times(cpu);
	x0 = dev_tx_dropped(ifname);
	t0 = now_s();
	tend = t0 + secs;
	while ((t = now_s()) < tend) {
		n = sendmmsg(s, msgs, batch, 0);
		if (n > 0)
			sent += (uint64_t)n;
		else if (n < 0 && errno != ENOBUFS && errno != EAGAIN &&
			 errno != EINTR)
			die("sendmmsg");
	}
	p1 = dev_tx_packets(ifname);
	c1 = cpu_times(cpu);
	x1 = dev_tx_dropped(ifname);
	printf("packets=%llu seconds=%.6f sent=%llu dev_dropped=%llu cpu_busy=%.4f\n",
	       (unsigned long long)(p1 - p0 + x1 - x0), t - t0, (unsigned long long)sent,
	       (unsigned long long)(x1 - x0),
	       cpu_busy_s(c0, c1));
	return 0;
}
