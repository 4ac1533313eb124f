// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_tx - TX through a MultiStack port: UDP frames put in the port's TX
 * ring and handed to multistack.ko with MS_IOC_TXSYNC, which validates each
 * one (the source 3-tuple must be registered to this port, the Ethernet
 * source must be the interface's) and sends it.
 *
 *   ms_tx -i IFNAME -a SRC -p SPORT -d DST -D DPORT -M DSTMAC -l LEN
 *         [-t SECONDS] [-w WARMUP] [-c CPU] [-B BATCH] [-s SLOTS] [-q]
 *
 * LEN is the frame length without FCS.  -q binds the port with
 * MS_PORT_F_QDISC_BYPASS (frames go straight to the driver, as AF_PACKET's
 * PACKET_QDISC_BYPASS; compare with pkt_tx -q).  Prints
 *   packets=N seconds=S sent=T submitted=U rejected=R tx_error=E dev_dropped=X
 * packets is the number of frames the interface's driver took over the
 * window (tx_packets + tx_dropped deltas; a veth drops when its peer's
 * backlog is full, dev_dropped says how many); sent is the port's
 * MS_STAT_TX_SENT delta; rejected sums the MS_STAT_TX_REJ_* deltas.
 * Exit 3 when the module or a feature is missing (reason on stderr).
 * cpu_busy is how many seconds CPU -c (the system under test) was busy
 * during the window, from /proc/stat: cpu_busy / packets is the cost of
 * one packet on that CPU, whoever spent it (softirq, syscall, user).
 */
#include "msport.h"

static uint64_t rejects(const struct ms_stats *st)
{
	return st->port[MS_STAT_TX_REJ_NOT_OWNED] +
	       st->port[MS_STAT_TX_REJ_OTHER_PORT] +
	       st->port[MS_STAT_TX_REJ_BAD_MAC] +
	       st->port[MS_STAT_TX_REJ_MALFORMED] +
	       st->port[MS_STAT_TX_REJ_RUNT] +
	       st->port[MS_STAT_TX_REJ_OVERSIZE] +
	       st->port[MS_STAT_TX_REJ_BAD_SLOT] +
	       st->port[MS_STAT_TX_REJ_FRAGMENT];
}

static uint64_t push(struct msport *p, uint32_t batch, uint16_t len)
{
	struct ms_netmap_ring *r = p->tx;
	uint32_t head = r->head, tail = ms_ring_tail(r), k = 0;

	while (head != tail && k < batch) {
		ms_ring_slot(r, head)->len = len;
		head = ms_ring_next(r, head);
		k++;
	}
	ms_ring_advance(r, head);
	if (ms_txsync(p->fd) && errno != ENETDOWN && errno != EINTR)
		die("MS_IOC_TXSYNC");
	return k;
}

struct ms_tx_args {
	uint32_t slots;
	uint32_t flags;
};

static int ms_tx_opt(int opt, const char *arg, void *ctx)
{
	struct ms_tx_args *a = ctx;

	if (opt == 's')
		a->slots = (uint32_t)atoi(arg);
	else if (opt == 'q')
		a->flags |= MS_PORT_F_QDISC_BYPASS;
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct cpu_times c0, c1;
	struct tx_opts o;
	int s, e;
	struct ms_tx_args a = { 0, 0 };
	uint32_t i;
	double t0, t = 0, tend;
	uint8_t smac[6], frame[2048];
	struct ms_stats st0, st1;
	uint64_t sub = 0, p0, p1, x0, x1;
	struct msport p;

	if (parse_tx_opts(argc, argv, "ms_tx", "s:q", UINT32_MAX, ms_tx_opt,
			  &a, &o))
		return 2;
	pin_cpu(o.cpu);
	if_mac(o.ifname, smac);
	build_udp_frame(frame, (size_t)o.len, o.dmac, smac, o.sa,
			(uint16_t)o.sport, o.da, (uint16_t)o.dport);
	e = msport_open_flags(&p, o.ifname, a.slots, a.flags);
	if (e == -EINVAL && a.flags) {
		fprintf(stderr, "ms_tx: port on %s: the module has no qdisc "
			"bypass (EINVAL)\n", o.ifname);
		return 3;
	}
	if (e) {
		fprintf(stderr, "ms_tx: port on %s: %s\n", o.ifname, strerror(-e));
		return 3;
	}
	s = msport_claim(&p, 1, o.src, (uint16_t)o.sport);
	if (s < 0) {
		fprintf(stderr, "ms_tx: register udp %s:%d: %s\n", o.src, o.sport,
			strerror(-s));
		return 3;
	}
	/* every TX buffer holds the frame once and for all */
	for (i = 0; i < p.tx->num_slots; i++)
		memcpy(ms_ring_buf(p.tx, ms_ring_slot(p.tx, i)->buf_idx), frame,
		       (size_t)o.len);
	fprintf(stderr, "ms_tx: ready on %s udp %s:%d -> %s:%d, %d B%s\n",
		o.ifname, o.src, o.sport, o.dst, o.dport, o.len,
		a.flags ? ", qdisc bypass" : "");

	t0 = now_s();
	while (now_s() - t0 < o.warm)
		push(&p, o.batch, (uint16_t)o.len);
	if (msport_stats(&p, &st0))
		die("MS_IOC_STATS");
	p0 = dev_tx_packets(o.ifname);
	c0 = cpu_times(o.cpu);
	x0 = dev_tx_dropped(o.ifname);
	t0 = now_s();
	tend = t0 + o.secs;
	while ((t = now_s()) < tend)
		sub += push(&p, o.batch, (uint16_t)o.len);
	p1 = dev_tx_packets(o.ifname);
	c1 = cpu_times(o.cpu);
	x1 = dev_tx_dropped(o.ifname);
	if (msport_stats(&p, &st1))
		die("MS_IOC_STATS");
	printf("packets=%llu seconds=%.6f sent=%llu submitted=%llu "
	       "rejected=%llu tx_error=%llu dev_dropped=%llu cpu_busy=%.4f\n",
	       (unsigned long long)(p1 - p0 + x1 - x0), t - t0,
	       (unsigned long long)(st1.port[MS_STAT_TX_SENT] -
				    st0.port[MS_STAT_TX_SENT]),
	       (unsigned long long)sub,
	       (unsigned long long)(rejects(&st1) - rejects(&st0)),
	       (unsigned long long)(st1.port[MS_STAT_TX_ERROR] -
				    st0.port[MS_STAT_TX_ERROR]),
	       (unsigned long long)(x1 - x0),
	       cpu_busy_s(c0, c1));
	return 0;
}
