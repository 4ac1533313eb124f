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

static int pkt_tx_opt(int opt, const char *arg, void *ctx)
{
	(void)arg;
	if (opt != 'q')
		return -1;
	*(int *)ctx = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct cpu_times c0, c1;
	struct tx_opts o;
	int bypass = 0, s, n;
	uint32_t i;
	double t0, t = 0, tend;
	static uint8_t frame[2048];
	static struct mmsghdr msgs[MAXB];
	struct iovec iov;
	uint8_t smac[6];
	struct sockaddr_ll sll;
	uint64_t sent = 0, p0, p1, x0, x1;

	if (parse_tx_opts(argc, argv, "pkt_tx", "q", MAXB, pkt_tx_opt, &bypass,
			  &o))
		return 2;
	pin_cpu(o.cpu);
	if_mac(o.ifname, smac);
	build_udp_frame(frame, (size_t)o.len, o.dmac, smac, o.sa,
			(uint16_t)o.sport, o.da, (uint16_t)o.dport);
	/* protocol 0: this socket sends only, it receives nothing */
	s = socket(AF_PACKET, SOCK_RAW, 0);
	if (s < 0)
		die("socket(AF_PACKET)");
	if (bypass && setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &bypass,
				 sizeof(bypass)))
		die("PACKET_QDISC_BYPASS");
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(o.ifname);
	if (!sll.sll_ifindex)
		die("if_nametoindex %s", o.ifname);
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind AF_PACKET");
	iov.iov_base = frame;
	iov.iov_len = (size_t)o.len;
	for (i = 0; i < o.batch; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	fprintf(stderr, "pkt_tx: ready on %s %s:%d -> %s:%d, %d B\n", o.ifname,
		o.src, o.sport, o.dst, o.dport, o.len);
	t0 = now_s();
	while (now_s() - t0 < o.warm)
		sendmmsg(s, msgs, o.batch, 0);
	p0 = dev_tx_packets(o.ifname);
	c0 = cpu_times(o.cpu);
	x0 = dev_tx_dropped(o.ifname);
	t0 = now_s();
	tend = t0 + o.secs;
	while ((t = now_s()) < tend) {
		n = sendmmsg(s, msgs, o.batch, 0);
		if (n > 0)
			sent += (uint64_t)n;
		else if (n < 0 && errno != ENOBUFS && errno != EAGAIN &&
			 errno != EINTR)
			die("sendmmsg");
	}
	p1 = dev_tx_packets(o.ifname);
	c1 = cpu_times(o.cpu);
	x1 = dev_tx_dropped(o.ifname);
	printf("packets=%llu seconds=%.6f sent=%llu dev_dropped=%llu cpu_busy=%.4f\n",
	       (unsigned long long)(p1 - p0 + x1 - x0), t - t0, (unsigned long long)sent,
	       (unsigned long long)(x1 - x0),
	       cpu_busy_s(c0, c1));
	return 0;
}
