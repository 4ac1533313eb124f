/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * common.h - helpers shared by the benchmark programs in bench/.
 *
 * Every program prints one result line of key=value pairs on stdout, e.g.
 *   packets=123 bytes=456 seconds=2.000123
 * and diagnostics on stderr.  The harness (bench/kmod_bench.py) parses that
 * line; a program exits non-zero only when it could not run.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (errno)
		fprintf(stderr, ": %s", strerror(errno));
	fputc('\n', stderr);
	exit(2);
}

/* Pins the calling thread to one CPU; -1 leaves it alone. */
static inline void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "warning: cannot pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

/* A u64 from a sysfs file (interface statistics); 0 when unreadable. */
static inline uint64_t read_u64(const char *fmt, const char *ifname)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), fmt, ifname);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

static inline uint64_t dev_tx_packets(const char *ifname)
{
	return read_u64("/sys/class/net/%s/statistics/tx_packets", ifname);
}

static inline uint64_t dev_tx_dropped(const char *ifname)
{
	return read_u64("/sys/class/net/%s/statistics/tx_dropped", ifname);
}

/* Frames that reached ifname's receive path (veth: what the peer sent). */
static inline uint64_t dev_rx_packets(const char *ifname)
{
	if (!ifname)
		return 0;
	return read_u64("/sys/class/net/%s/statistics/rx_packets", ifname);
}

/*
 * Idle and total time of one CPU from /proc/stat, in USER_HZ ticks
 * (idle includes iowait).  Busy time over a window is the difference.
 */
struct cpu_times {
	unsigned long long idle, total;
};

static inline struct cpu_times cpu_times(int cpu)
{
	struct cpu_times ct = { 0, 0 };
	unsigned long long v[10] = { 0 };
	char line[512], name[16];
	FILE *f = fopen("/proc/stat", "r");
	int i;

	if (!f || cpu < 0)
		goto out;
	snprintf(name, sizeof(name), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, strlen(name)))
			continue;
		sscanf(line + strlen(name),
		       "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
		       &v[8], &v[9]);
		/* user nice system idle iowait irq softirq steal (guest*) */
		for (i = 0; i < 8; i++)
			ct.total += v[i];
		ct.idle = v[3] + v[4];
		break;
	}
out:
	if (f)
		fclose(f);
	return ct;
}

/*
 * Function-call IPIs taken by `cpu` (the CAL line of /proc/interrupts):
 * RPS sends one to wake a CPU whose backlog had run empty.
 */
static inline unsigned long long cpu_ipis(int cpu)
{
	unsigned long long n = 0;
	char line[4096], *p, *end;
	FILE *f = fopen("/proc/interrupts", "r");
	int i;

	if (!f || cpu < 0)
		goto out;
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " ");
		if (strncmp(p, "CAL:", 4))
			continue;
		p += 4;
		for (i = 0; i <= cpu; i++) {
			n = strtoull(p, &end, 10);
			if (end == p) {
				n = 0;
				break;
			}
			p = end;
		}
		break;
	}
out:
	if (f)
		fclose(f);
	return n;
}

/* Seconds the CPU was busy between two samples. */
static inline double cpu_busy_s(struct cpu_times a, struct cpu_times b)
{
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long tot = b.total - a.total, idle = b.idle - a.idle;

	return hz > 0 && tot >= idle ? (double)(tot - idle) / (double)hz : 0;
}

static inline int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int m[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
		   &m[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)m[i];
	return 0;
}

static inline void if_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0)
		die("socket");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFHWADDR, &ifr))
		die("SIOCGIFHWADDR %s", ifname);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
}

static inline uint16_t ip_csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * Builds an Ethernet/IPv4/UDP frame of exactly `len` bytes (no FCS) into
 * buf.  The UDP checksum is 0 (none), as pktgen sends them; the IPv4 header
 * checksum is correct.
 */
static inline void build_udp_frame(uint8_t *buf, size_t len,
				   const uint8_t dmac[6], const uint8_t smac[6],
				   struct in_addr src, uint16_t sport,
				   struct in_addr dst, uint16_t dport)
{
	uint8_t *ip = buf + 14, *udp = buf + 34;
	uint16_t iplen = (uint16_t)(len - 14), udplen = (uint16_t)(len - 34);
	uint16_t c;
	size_t i;

	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = iplen >> 8;
	ip[3] = iplen & 0xff;
	ip[6] = 0x40;			/* DF */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	c = ip_csum(ip, 20);
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	udp[0] = sport >> 8;
	udp[1] = sport & 0xff;
	udp[2] = dport >> 8;
	udp[3] = dport & 0xff;
	udp[4] = udplen >> 8;
	udp[5] = udplen & 0xff;
	udp[6] = 0;
	udp[7] = 0;
	for (i = 42; i < len; i++)
		buf[i] = (uint8_t)i;
}

/* The options both TX programs take (bench/pkt_tx.c, bench/ms_tx.c). */
struct tx_opts {
	const char *ifname, *src, *dst;
	int sport, dport, cpu, len;
	uint32_t batch;
	double secs, warm;
	struct in_addr sa, da;
	uint8_t dmac[6];
};

/*
 * Parses -i IFNAME -a SRC -p SPORT -d DST -D DPORT -M DSTMAC -l LEN
 * [-t SECONDS] [-w WARMUP] [-c CPU] [-B BATCH] plus the program's own
 * options `extra` (getopt letters), each handed to on_extra(opt, optarg,
 * ctx), which returns 0 or -1 for a bad value.  Returns 0; or says
 * "NAME: bad arguments" and returns 2.
 */
static inline int parse_tx_opts(int argc, char **argv, const char *name,
				const char *extra, uint32_t max_batch,
				int (*on_extra)(int, const char *, void *),
				void *ctx, struct tx_opts *o)
{
	const char *dmac = NULL;
	char optstring[64];
	int opt;

	memset(o, 0, sizeof(*o));
	o->cpu = -1;
	o->batch = 256;
	o->secs = 2;
	o->warm = 0.3;
	snprintf(optstring, sizeof(optstring), "i:a:p:d:D:M:l:t:w:c:B:%s",
		 extra);
	while ((opt = getopt(argc, argv, optstring)) != -1) {
		switch (opt) {
		case 'i': o->ifname = optarg; break;
		case 'a': o->src = optarg; break;
		case 'p': o->sport = atoi(optarg); break;
		case 'd': o->dst = optarg; break;
		case 'D': o->dport = atoi(optarg); break;
		case 'M': dmac = optarg; break;
		case 'l': o->len = atoi(optarg); break;
		case 't': o->secs = atof(optarg); break;
		case 'w': o->warm = atof(optarg); break;
		case 'c': o->cpu = atoi(optarg); break;
		case 'B': o->batch = (uint32_t)atoi(optarg); break;
		default:
			if (opt == '?' || on_extra(opt, optarg, ctx))
				goto bad;
		}
	}
	if (!o->ifname || !o->src || !o->dst || !dmac || !o->sport || !o->dport ||
	    o->len < 42 || o->len > 2048 || o->batch < 1 ||
	    o->batch > max_batch || inet_pton(AF_INET, o->src, &o->sa) != 1 ||
	    inet_pton(AF_INET, o->dst, &o->da) != 1 || parse_mac(dmac, o->dmac))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "%s: bad arguments (see bench/%s.c)\n", name, name);
	return 2;
}

static volatile sig_atomic_t stop_flag;

static inline void on_stop_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/*
 * SIGTERM or SIGINT ends the measurement window early; the program still
 * prints what it measured.  No SA_RESTART: a blocked poll() or recvmmsg()
 * returns at once.
 */
static inline void stop_on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

#endif /* BENCH_COMMON_H */
