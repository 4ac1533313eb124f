/* ms_xdp loader: the few libbpf calls multistack.xdp needs, with plain
 * arguments (no libbpf option structs cross into Python). */
#ifndef MS_XDP_LOADER_H
#define MS_XDP_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

#include "ms_xdp.h"

struct bpf_object *msx_open(const char *path);
int msx_load(struct bpf_object *obj, const char *log_path);
int msx_prog_fd(struct bpf_object *obj, const char *name);
int msx_map_fd(struct bpf_object *obj, const char *name);
int msx_test_run(int prog_fd, const void *data, uint32_t len,
		 uint32_t ingress_ifindex, uint32_t repeat, uint32_t *retval,
		 uint32_t *duration_ns);
int msx_attach(int ifindex, int prog_fd, uint32_t flags);
int msx_detach(int ifindex, int prog_fd, uint32_t flags);
int msx_query(int ifindex, uint32_t flags, uint32_t *prog_id);
int msx_possible_cpus(void);

#endif
