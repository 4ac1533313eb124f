// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_if - control helper for the benchmarks, straight from the ABI header.
 *
 *   ms_if attach IFNAME       MS_IOC_ATTACH (EEXIST is fine)
 *   ms_if detach IFNAME       MS_IOC_DETACH (ENOENT is fine)
 *   ms_if mem IFNAME [N [SRC]]
 *                             open N ports (default 8) with 1024-slot rings
 *                             and print what one port costs:
 *     mem_size=M buf_size=B nbufs=K vmalloc_per_port=V percpu_per_port=P
 *     slab_per_port=S ports=N proc_mem=P [tx_frames=F tx_len=L proc_txmem=T]
 *   (mem_size from MS_IOC_PORT_BIND; the others are /proc/meminfo deltas
 *   over the N ports divided by N, in bytes: what the kernel really
 *   allocated; proc_mem is the "mem" the module itself shows for the first
 *   port in /proc/net/multistack, -1 if it shows none.  With SRC, an
 *   address of IFNAME, the first port then claims udp SRC:MEM_SPORT and
 *   sends a full TX ring of F frames of L bytes (MTU-sized, to its own
 *   MAC, so the peer drops them) in one sync, and proc_txmem is the
 *   "txmem" the module shows for it: the kernel-private TX frame pages,
 *   which are not in mem_size, -1 if it shows none.)
 * Exit 3 when the module is missing or refuses (reason on stderr).
 */
#include "msport.h"

static long long meminfo_kb(const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atoll(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

#define MEM_SPORT	47999

/*
 * The figure after " key " /proc/net/multistack shows for port `id` (key
 * "mem" or "txmem"); -1 if none.
 */
static long long proc_port_field(unsigned int id, const char *key)
{
	char line[4096], k[32], *m;
	unsigned int pid;
	long long v = -1;
	FILE *f = fopen("/proc/net/multistack", "r");

	if (!f)
		return -1;
	snprintf(k, sizeof(k), " %s ", key);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "port %u ", &pid) == 1 && pid == id &&
		    (m = strstr(line, k)) != NULL) {
			v = atoll(m + strlen(k));
			break;
		}
	fclose(f);
	return v;
}

/*
 * Fills p's TX ring with MTU-sized UDP frames from src:MEM_SPORT to the
 * interface's own MAC and sends them in one TX sync.  Prints the
 * tx_frames=, tx_len= and proc_txmem= fields; on failure only
 * proc_txmem=-1, with the reason on stderr.
 */
static void mem_tx(struct msport *p, const char *ifname, const char *src)
{
	struct ms_netmap_ring *r = p->tx;
	uint32_t head = r->head, tail = ms_ring_tail(r), k = 0;
	uint8_t mac[6], frame[2048];
	struct in_addr sa;
	struct ifreq ifr;
	int s, len;

	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (s < 0 || ioctl(s, SIOCGIFMTU, &ifr) || inet_pton(AF_INET, src, &sa) != 1) {
		fprintf(stderr, "ms_if: mem %s %s: bad interface or address\n",
			ifname, src);
		if (s >= 0)
			close(s);
		goto fail;
	}
	close(s);
	len = ifr.ifr_mtu + 14;
	if (len > (int)p->info.buf_size)
		len = (int)p->info.buf_size;
	if (len > (int)sizeof(frame))
		len = (int)sizeof(frame);
	s = msport_claim(p, 1, src, MEM_SPORT);
	if (s < 0) {
		fprintf(stderr, "ms_if: register udp %s:%d: %s\n", src,
			MEM_SPORT, strerror(-s));
		goto fail;
	}
	if_mac(ifname, mac);
	build_udp_frame(frame, (size_t)len, mac, mac, sa, MEM_SPORT, sa, 9);
	while (head != tail) {			/* n - 1 frames */
		struct ms_netmap_slot *slot = ms_ring_slot(r, head);

		memcpy(ms_ring_buf(r, slot->buf_idx), frame, (size_t)len);
		slot->len = (uint16_t)len;
		head = ms_ring_next(r, head);
		k++;
	}
	ms_ring_advance(r, head);
	if (ms_txsync(p->fd)) {
		fprintf(stderr, "ms_if: MS_IOC_TXSYNC: %s\n", strerror(errno));
		close(s);
		goto fail;
	}
	printf(" tx_frames=%u tx_len=%d proc_txmem=%lld", k, len,
	       proc_port_field(p->info.port_id, "txmem"));
	close(s);
	return;
fail:
	printf(" proc_txmem=-1");
}

static int ifreq(const char *ifname, unsigned long cmd, int ok_errno)
{
	struct ms_if_req r;
	int fd = open(MS_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "ms_if: %s: %s\n", MS_DEVICE_PATH, strerror(errno));
		return 3;
	}
	memset(&r, 0, sizeof(r));
	r.version = MS_ABI_VERSION;
	snprintf(r.ifname, sizeof(r.ifname), "%s", ifname);
	if (ioctl(fd, cmd, &r) && errno != ok_errno) {
		fprintf(stderr, "ms_if: %s %s: %s\n",
			cmd == MS_IOC_ATTACH ? "attach" : "detach", ifname,
			strerror(errno));
		return 3;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "attach"))
		return ifreq(argv[2], MS_IOC_ATTACH, EEXIST);
	if (argc >= 3 && !strcmp(argv[1], "detach"))
		return ifreq(argv[2], MS_IOC_DETACH, ENOENT);
	if (argc >= 3 && !strcmp(argv[1], "mem")) {
		int n = argc > 3 ? atoi(argv[3]) : 8, i, e;
		struct msport *p = calloc((size_t)n, sizeof(*p));
		long long v0, v1, c0, c1, s0, s1;

		if (!p || n < 1)
			return 2;
		v0 = meminfo_kb("VmallocUsed");
		c0 = meminfo_kb("Percpu");
		s0 = meminfo_kb("SUnreclaim");
		for (i = 0; i < n; i++) {
			e = msport_open(&p[i], argv[2], MS_DEFAULT_SLOTS);
			if (e) {
				fprintf(stderr, "ms_if: port %d on %s: %s\n", i,
					argv[2], strerror(-e));
				return 3;
			}
		}
		v1 = meminfo_kb("VmallocUsed");
		c1 = meminfo_kb("Percpu");
		s1 = meminfo_kb("SUnreclaim");
		printf("mem_size=%u buf_size=%u nbufs=%u tx_slots=%u rx_slots=%u "
		       "vmalloc_per_port=%lld percpu_per_port=%lld "
		       "slab_per_port=%lld ports=%d proc_mem=%lld",
		       p[0].info.mem_size, p[0].info.buf_size,
		       p[0].nifp->ni_nbufs, p[0].info.tx_slots,
		       p[0].info.rx_slots, (v1 - v0) * 1024 / n,
		       (c1 - c0) * 1024 / n, (s1 - s0) * 1024 / n, n,
		       proc_port_field(p[0].info.port_id, "mem"));
		if (argc > 4)
			mem_tx(&p[0], argv[2], argv[4]);
		printf("\n");
		return 0;
	}
	fprintf(stderr, "usage: ms_if attach|detach|mem IFNAME [N [SRC]]\n");
	return 2;
}
