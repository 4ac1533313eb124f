// SPDX-License-Identifier: BSD-2-Clause
/*
 * ms_if - control helper for the benchmarks, straight from the ABI header.
 *
 *   ms_if attach IFNAME       MS_IOC_ATTACH (EEXIST is fine)
 *   ms_if detach IFNAME       MS_IOC_DETACH (ENOENT is fine)
 *   ms_if mem IFNAME [N]      open N ports (default 8) with 1024-slot rings
 *                             and print what one port costs:
 *     mem_size=M buf_size=B nbufs=K vmalloc_per_port=V percpu_per_port=P
 *     slab_per_port=S ports=N proc_mem=P
 *   (mem_size from MS_IOC_PORT_BIND; the others are /proc/meminfo deltas
 *   over the N ports divided by N, in bytes: what the kernel really
 *   allocated; proc_mem is the "mem" the module itself shows for the first
 *   port in /proc/net/multistack, -1 if it shows none.)
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

/* The "mem" figure /proc/net/multistack shows for port `id`; -1 if none. */
static long long proc_port_mem(unsigned int id)
{
	char line[4096], *m;
	unsigned int pid;
	long long v = -1;
	FILE *f = fopen("/proc/net/multistack", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "port %u ", &pid) == 1 && pid == id &&
		    (m = strstr(line, " mem ")) != NULL) {
			v = atoll(m + 5);
			break;
		}
	fclose(f);
	return v;
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
		       "slab_per_port=%lld ports=%d proc_mem=%lld\n",
		       p[0].info.mem_size, p[0].info.buf_size,
		       p[0].nifp->ni_nbufs, p[0].info.tx_slots,
		       p[0].info.rx_slots, (v1 - v0) * 1024 / n,
		       (c1 - c0) * 1024 / n, (s1 - s0) * 1024 / n, n,
		       proc_port_mem(p[0].info.port_id));
		return 0;
	}
	fprintf(stderr, "usage: ms_if attach|detach|mem IFNAME [N]\n");
	return 2;
}
