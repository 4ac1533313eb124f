"""cffi API-mode build of ``multistack._xdp_native``: the XDP backend's
libbpf loader (loader.c) and the map layouts of xdp/ms_xdp.h.

A separate extension from ``multistack._native`` so that only the XDP
backend links libbpf.  The struct declarations below are checked by cffi
against xdp/ms_xdp.h when the extension is compiled (API mode), so a
layout that drifts from the BPF programs' fails the build.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

CDEF = """
struct bpf_object;

struct ms_xdp_key {
    uint8_t addr[16];
    uint8_t family;
    uint8_t proto;
    uint16_t port;
};
struct ms_xdp_claim {
    uint32_t port_ifindex;
    uint32_t flags;
    uint64_t sock_cookie;
};
struct ms_xdp_addr {
    uint8_t addr[16];
    uint8_t family;
    uint8_t pad[3];
};
struct ms_xdp_iface_cfg {
    uint32_t ifindex;
    uint8_t mac[6];
    uint8_t pad[2];
};
struct ms_xdp_port_cfg {
    uint32_t max_rx_len;
    uint32_t max_tx_len;
};
#define MS_XDP_STATS_LEN ...
struct ms_xdp_stats {
    uint64_t c[...];
};

#define XDP_ABORTED ...
#define XDP_DROP ...
#define XDP_PASS ...
#define XDP_TX ...
#define XDP_REDIRECT ...
#define XDP_FLAGS_SKB_MODE ...
#define XDP_FLAGS_DRV_MODE ...

struct bpf_object *msx_open(const char *path);
int msx_load(struct bpf_object *obj, const char *log_path);
void bpf_object__close(struct bpf_object *obj);
int msx_prog_fd(struct bpf_object *obj, const char *name);
int msx_map_fd(struct bpf_object *obj, const char *name);
int msx_test_run(int prog_fd, const void *data, uint32_t len,
                 uint32_t ingress_ifindex, uint32_t repeat, uint32_t *retval,
                 uint32_t *duration_ns);
int msx_attach(int ifindex, int prog_fd, uint32_t flags);
int msx_detach(int ifindex, int prog_fd, uint32_t flags);
int msx_query(int ifindex, uint32_t flags, uint32_t *prog_id);
int msx_possible_cpus(void);

int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_delete_elem(int fd, const void *key);
int bpf_map_get_next_key(int fd, const void *key, void *next_key);
long libbpf_get_error(const void *ptr);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "multistack._xdp_native",
    '#include <linux/if_link.h>\n#include "loader.h"',
    sources=[str((HERE / "loader.c").relative_to(ROOT))],
    include_dirs=[str(HERE), str(ROOT / "xdp")],
    libraries=["bpf"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
