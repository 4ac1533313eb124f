// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * loader.c - the libbpf side of multistack.xdp.
 *
 * Every function returns 0 or a negative errno (libbpf 1.x convention) and
 * is called with the GIL released by nothing: each is short, except
 * msx_load (the verifier) and msx_test_run with a large repeat.
 *
 * libbpf prints the verifier's log through its print callback; msx_load
 * sends everything libbpf prints during the load to `log_path`, so a
 * rejection leaves the whole log in one file the caller can name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <linux/if_link.h>

#include "loader.h"

static FILE *msx_log;

static int msx_print(enum libbpf_print_level level, const char *fmt,
		     va_list args)
{
	(void)level;
	if (!msx_log)
		return 0;
	return vfprintf(msx_log, fmt, args);
}

struct bpf_object *msx_open(const char *path)
{
	struct bpf_object *obj;

	libbpf_set_print(NULL);
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return NULL;
	return obj;
}

int msx_load(struct bpf_object *obj, const char *log_path)
{
	int err;

	msx_log = fopen(log_path, "w");
	libbpf_set_print(msx_print);
	err = bpf_object__load(obj);
	libbpf_set_print(NULL);
	if (msx_log) {
		fclose(msx_log);
		msx_log = NULL;
	}
	return err;
}

int msx_prog_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, name);

	return prog ? bpf_program__fd(prog) : -ENOENT;
}

int msx_map_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, name);

	return map ? bpf_map__fd(map) : -ENOENT;
}

int msx_test_run(int prog_fd, const void *data, uint32_t len,
		 uint32_t ingress_ifindex, uint32_t repeat, uint32_t *retval,
		 uint32_t *duration_ns)
{
	struct xdp_md ctx = { .data_end = len,
			      .ingress_ifindex = ingress_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = data, .data_size_in = len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .repeat = (int)repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);

	if (err)
		return err;
	*retval = opts.retval;
	*duration_ns = opts.duration;
	return 0;
}

int msx_attach(int ifindex, int prog_fd, uint32_t flags)
{
	/* XDP_FLAGS_UPDATE_IF_NOEXIST: never replace another program */
	return bpf_xdp_attach(ifindex, prog_fd,
			      flags | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
}

int msx_detach(int ifindex, int prog_fd, uint32_t flags)
{
	/* only our program: XDP_FLAGS_REPLACE fails (EEXIST) on another */
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = prog_fd);

	return bpf_xdp_detach(ifindex, flags | XDP_FLAGS_REPLACE, &opts);
}

int msx_query(int ifindex, uint32_t flags, uint32_t *prog_id)
{
	return bpf_xdp_query_id(ifindex, (int)flags, prog_id);
}

int msx_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}
