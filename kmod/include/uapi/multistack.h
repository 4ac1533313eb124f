/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * multistack.h - the user/kernel ABI of multistack.ko (/dev/multistack).
 *
 * This header is the single source of truth for the structures, ioctl
 * numbers, statistics indices and errno meanings.  It is included by the
 * kernel module, by the Python cffi extension and by test programs.  It is
 * changed only additively: new ioctls, new constants, reserved bytes turned
 * into fields (with MS_ABI_VERSION unchanged as long as zero keeps the old
 * meaning).
 *
 * Conventions
 *   - All integers are fixed width; multi-byte integers are in host byte
 *     order, EXCEPT addresses, which are raw network-order bytes
 *     (IPv4 in addr[0..3], addr[4..15] zero; IPv6 in addr[0..15]).
 *   - Every request struct starts with `version` (must be MS_ABI_VERSION)
 *     and `flags` (must be 0 unless a flag is documented), and ends with
 *     reserved bytes that must be zero.  Otherwise: EINVAL.
 *   - Interface names are NUL-terminated within MS_IFNAMSIZ bytes
 *     (EINVAL otherwise).
 *
 * Life of a port
 *   1. (admin, once) fd = open("/dev/multistack"); ioctl(fd, MS_IOC_ATTACH,
 *      {ifname}).  Needs CAP_NET_ADMIN in the caller's network namespace;
 *      the interface is looked up in the caller's network namespace.  The
 *      attachment survives the close of that fd and lasts until
 *      MS_IOC_DETACH, the interface being unregistered (deleted or moved to
 *      another namespace), or rmmod.
 *   2. fd = open("/dev/multistack", O_RDWR); ioctl(fd, MS_IOC_PORT_BIND,
 *      &ms_port_req) binds this fd to a new port on an attached interface
 *      (again looked up in the caller's namespace).  The kernel fills in
 *      mem_size.  One fd = at most one port.
 *   3. mem = mmap(NULL, mem_size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0).
 *      Length must be exactly mem_size and offset 0 (EINVAL otherwise).
 *   4. ioctl(fd, MS_IOC_REGISTER, &ms_reg_req) for every 3-tuple, proving
 *      ownership with a socket bound to it.  The unspecified address
 *      (0.0.0.0, ::) registers the wildcard: the port on every address the
 *      interface has, now or later, proven by a wildcard-bound socket.  On
 *      an address another port registered itself, that registration wins
 *      (RX and TX), as the most specific socket does in the OS's lookup.
 *      A registration owns its tuple only while the proving socket holds
 *      the tuple's binding alone: bound to that port, on that address or
 *      the wildcard (the wildcard only, for a wildcard registration), and
 *      without SO_REUSEADDR (a listening TCP socket keeps its port alone
 *      even with it).  The module checks this on every frame, because the
 *      OS lets a socket give its port back while it lives: connect()
 *      with AF_UNSPEC on a socket whose port was picked by the kernel
 *      (bind to port 0, connect, sendto, listen) releases the port, and
 *      connect() narrows a wildcard binding to one address.  From then on
 *      the registration owns nothing (frames go to the OS, TX from the
 *      tuple is refused as MS_STAT_TX_REJ_NOT_OWNED, /proc shows its proof
 *      "released"), and a registration of the same tuple with a socket
 *      that holds it replaces it.  Bind the proof to a port number of your
 *      own to keep the port for as long as the socket lives.
 *   5. RX: poll(fd, POLLIN) / MS_IOC_RXSYNC, read slots [head, tail) of the
 *      RX ring, advance head (and cur) past the consumed slots.
 *      TX: fill slots [head, tail) of the TX ring, advance head (and cur),
 *      MS_IOC_TXSYNC (or poll with POLLOUT, which also performs a TX sync).
 *   6. close(fd) and munmap (process death does both): the port ends, every
 *      registration is dropped and the socket references released.  A
 *      mapping keeps the file, and so the port, alive after close(fd): to
 *      let go of the tuples while still mapped, MS_IOC_UNREGISTER them
 *      first (the Python KernelPort.close does when a view is still held).
 *
 * Ioctls (magic MS_IOC_MAGIC = 0xB7)
 *   MS_IOC_ATTACH     _IOW  struct ms_if_req   attach to ifname
 *   MS_IOC_DETACH     _IOW  struct ms_if_req   detach from ifname (ports on
 *                                              it become dead, see ENXIO)
 *   MS_IOC_PORT_BIND  _IOWR struct ms_port_req make this fd a port
 *                                              (flags: MS_PORT_F_*)
 *   MS_IOC_REGISTER   _IOW  struct ms_reg_req  claim a 3-tuple
 *   MS_IOC_UNREGISTER _IOW  struct ms_reg_req  release a 3-tuple (sockfd
 *                                              ignored, must be -1 or any)
 *   MS_IOC_TXSYNC     _IO                      validate+send TX slots
 *                                              [hwcur, head); reclaim space
 *                                              (tail = head - 1 mod n)
 *   MS_IOC_RXSYNC     _IO                      take user's RX head, publish
 *                                              received slots (move tail)
 *   MS_IOC_STATS      _IOWR struct ms_stats    counters (see below)
 *   MS_IOC_INFO       _IOWR struct ms_port_req on a port fd: read back the
 *                                              port's parameters
 *   MS_IOC_REJECTS    _IOWR struct ms_rej_req  on any fd: the last TX frames
 *                                              a port refused (see below)
 *
 * Errno table
 *   EINVAL          malformed request: bad version, undocumented flags,
 *                   nonzero reserved bytes, unterminated ifname, slot
 *                   count not a power of two within
 *                   [MS_MIN_SLOTS, MS_MAX_SLOTS],
 *                   buf_size not a multiple of 64 within
 *                   [MS_MIN_BUF_SIZE, MS_MAX_BUF_SIZE] or smaller than the
 *                   interface's MTU + 18, total memory > MS_MAX_MEM,
 *                   IPv4 addr with nonzero addr[4..15], port 0, or a
 *                   multicast, broadcast or v4-mapped address; mmap with wrong length /
 *                   offset / without MAP_SHARED; MS_IOC_PORT_BIND on an fd
 *                   that already is a port.
 *   EPERM           ATTACH/DETACH without CAP_NET_ADMIN in the caller's
 *                   network namespace; REJECTS on another user's port
 *                   without CAP_NET_ADMIN there.
 *   ENODEV          no interface of that name in the caller's namespace
 *                   (ATTACH/DETACH/PORT_BIND/STATS by name); or the
 *                   interface is not Ethernet (ATTACH).
 *   EEXIST          ATTACH: interface already attached to MultiStack.
 *   EBUSY           ATTACH: interface already has another rx_handler
 *                   (bridge, bond, macvlan, ...).
 *   ENOENT          DETACH/PORT_BIND/STATS by name: interface not attached;
 *                   UNREGISTER: tuple not registered to this port;
 *                   REJECTS: no port of that id on an interface attached
 *                   in the caller's network namespace.
 *   ENOTCONN        port ioctl (REGISTER, UNREGISTER, *SYNC, INFO) or mmap
 *                   on an fd that is not bound to a port.
 *   ENXIO           the port's interface vanished or was detached (the
 *                   port is dead: REGISTER, UNREGISTER, TXSYNC and RXSYNC
 *                   fail with ENXIO, poll returns POLLERR; STATS and INFO
 *                   still answer; close() releases it).
 *   EAFNOSUPPORT    REGISTER: family is not MS_FAMILY_INET/MS_FAMILY_INET6.
 *   EPROTONOSUPPORT REGISTER: proto is not MS_PROTO_TCP/MS_PROTO_UDP.
 *   EBADF           REGISTER: sockfd is not an open descriptor of the caller
 *                   (a socket received over SCM_RIGHTS is the caller's own:
 *                   handing the bound socket over delegates the tuple).
 *   ENOTSOCK        REGISTER: sockfd is not a socket.
 *   EPROTOTYPE      REGISTER: the socket's family, type or protocol differ
 *                   from the request (TCP needs SOCK_STREAM/IPPROTO_TCP,
 *                   UDP needs SOCK_DGRAM/IPPROTO_UDP; an IPv4 tuple needs an
 *                   AF_INET socket, even where a dual-stack AF_INET6 one
 *                   holds the port).
 *   EACCES          REGISTER: the socket is not bound to that port on that
 *                   address or the wildcard (includes unbound sockets and
 *                   sockets of another network namespace); a wildcard
 *                   registration needs a wildcard-bound socket.
 *   EPERM           REGISTER: the socket shares its binding: SO_REUSEADDR
 *                   is set (on TCP: and the socket is not listening), so a
 *                   socket of any user could bind the same tuple.
 *   EADDRNOTAVAIL   REGISTER: the address is not configured on the port's
 *                   interface (IPv6: also while still tentative/DAD).
 *   EADDRINUSE      REGISTER: the 3-tuple is already registered on this
 *                   interface (by any port, this one included) with a
 *                   proof that still holds it.
 *   ENOSPC          REGISTER: port already holds MS_MAX_REGS tuples.
 *   ENOBUFS         PORT_BIND: the port's pages would take the caller's
 *                   user past the caller's RLIMIT_MEMLOCK.  A port
 *                   charges mem_size plus MS_TX_MEM_MAX bytes (the TX
 *                   frame pages it may hold) to its opener's user, in the
 *                   same locked_vm count AF_XDP and io_uring charge, from
 *                   bind until the port ends (close and munmap); openers
 *                   with CAP_IPC_LOCK (in the initial user namespace) are
 *                   not charged.
 *   ENOMEM          allocation failure; PORT_BIND also when the port's
 *                   memory (charged to the caller's memory cgroup) would
 *                   pass that cgroup's limit.
 *   ENETDOWN        TXSYNC: interface is down (slots are consumed and
 *                   counted as MS_STAT_TX_ERROR).
 *   EFAULT          bad user pointer.
 *   ENOTTY          unknown ioctl.
 *
 * Shared memory layout (all offsets in bytes; the whole area is mem_size)
 *   0                       struct ms_netmap_if (MS_IF_SIZE bytes region)
 *   if + ring_ofs[0]        TX ring: struct ms_netmap_ring, slots at +256
 *   if + ring_ofs[1]        RX ring: struct ms_netmap_ring, slots at +256
 *   ring + buf_ofs          buffer pool base for that ring.  Buffer i is
 *                           at ring + buf_ofs + i * nr_buf_size.  The pool is
 *                           shared by both rings: indices 0..tx_slots-1 are
 *                           initially in the TX ring, tx_slots ..
 *                           tx_slots+rx_slots-1 in the RX ring.  User space
 *                           may swap buf_idx values between slots it owns
 *                           (any index < tx_slots + rx_slots is valid);
 *                           the kernel re-checks every index it uses.
 *   Ring headers and the pool start on page boundaries.
 *
 * Ring protocol (netmap semantics, one TX and one RX ring per port)
 *   User space owns the slots [head, tail) of each ring; the kernel owns the
 *   rest.  One slot is always left empty (a ring of n slots carries at most
 *   n - 1 frames).  `cur` is informational (kept equal to head is fine).
 *   The kernel writes head/cur/tail only at bind time; afterwards it writes
 *   only `tail` (and reads `head`), and only inside MS_IOC_TXSYNC,
 *   MS_IOC_RXSYNC and poll().
 *   TX: initially head = cur = 0, tail = n - 1.  Put a frame in the buffer
 *       of slot[head], set slot.len, advance head.  TXSYNC validates and
 *       sends every slot from the previous head to the new head, then sets
 *       tail = head - 1 (mod n): all space is reclaimed at once.  A slot's
 *       len must be a whole Ethernet frame without FCS.  slot.flags and
 *       slot.ptr are ignored on TX.
 *   RX: initially head = cur = tail = 0.  RXSYNC/poll record the user's
 *       head (freeing the slots before it) and publish tail; frames are in
 *       slots [head, tail): whole Ethernet frames (from the destination
 *       MAC, no FCS), slot.len bytes, slot.flags = 0.
 *   A head outside the ring, or one that moves backwards / past tail, makes
 *   the sync return EINVAL without changing anything.
 *   Memory ordering: store head with release semantics (after writing the
 *   slots and buffers it covers) and load tail with acquire semantics; the
 *   kernel does the converse (smp_load_acquire(head),
 *   smp_store_release(tail)).
 *
 * Statistics (MS_IOC_STATS): counters[] are indexed by MS_STAT_*.  On a
 *   port fd the request's ifname must be empty: port[] holds that port's
 *   counters, iface[] those of its interface.  On an unbound fd, ifname
 *   names an attached interface in the caller's namespace: iface[] is
 *   filled and port[] is zero.  Counters are monotonic u64.
 *   Also readable as text in /proc/net/multistack (per network namespace),
 *   where a port's pid is shown only to its opener's euid and to
 *   CAP_NET_ADMIN ("-" to others); its tuples and uid to everyone.
 *
 * RX classification (see multistack_classify.h): a frame is looked up only
 *   if it is untagged Ethernet carrying IPv4/IPv6 + TCP/UDP with correct
 *   lengths and IPv4 header checksum.  802.1Q-tagged frames, IPv4/IPv6
 *   fragments, other protocols and malformed frames are passed to the OS
 *   stack untouched (counted).  L4 checksums are not verified by the kernel.
 *   An IPv6 routing header of type 0 (deprecated, RFC 5095) makes a frame
 *   malformed: passed to the OS on RX, refused on TX
 *   (MS_STAT_TX_REJ_MALFORMED); other routing header types are walked over.
 *   ICMP errors about a port's own packets go to that port: an untagged
 *   ICMPv4 destination unreachable (fragmentation needed included), time
 *   exceeded or parameter problem, or ICMPv6 destination unreachable,
 *   packet too big, time exceeded or parameter problem, whose outer IP
 *   header is valid as above and whose quoted packet is a TCP/UDP packet
 *   of the same family (quoted IPv4: version 4, valid IHL, the header and
 *   8 transport bytes present, not a non-first fragment; quoted IPv6: 40 +
 *   8 bytes present, no extension header) sent from the error's
 *   destination address, is looked up by the quoted SOURCE (protocol,
 *   address, port), with the same exact/wildcard rules as a frame to that
 *   tuple.  The owner receives the whole frame in its RX ring
 *   (MS_STAT_RX_ICMP_DELIVERED, also RX_DELIVERED).  The ICMP checksum is
 *   not verified (an L4 checksum: the port's stack checks it, and a
 *   transport must judge the quote itself, e.g. TCP's quoted sequence
 *   number, RFC 5927; a forged error reaches only the port it names).
 *   Every other ICMP message (echo, neighbour/router discovery, redirects,
 *   errors about tuples nobody registered) goes to the OS untouched.
 */
#ifndef _UAPI_MULTISTACK_H
#define _UAPI_MULTISTACK_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define MS_ABI_VERSION		1
#define MS_DEVICE_PATH		"/dev/multistack"
#define MS_IFNAMSIZ		16

/* bounds */
#define MS_MIN_SLOTS		8
#define MS_MAX_SLOTS		4096
#define MS_DEFAULT_SLOTS	1024
#define MS_MIN_BUF_SIZE		256
#define MS_MAX_BUF_SIZE		16384
#define MS_DEFAULT_BUF_SIZE	2048
#define MS_MAX_MEM		(64 * 1024 * 1024)
#define MS_MAX_REGS		1024
#define MS_TX_MEM_MAX		(128 * 1024)	/* TX frame pages a port may
						 * hold (4 KiB pages), charged
						 * with mem_size (ENOBUFS) */

/* families and protocols (numerically equal to AF_* / IPPROTO_*) */
#define MS_FAMILY_INET		2
#define MS_FAMILY_INET6		10
#define MS_PROTO_TCP		6
#define MS_PROTO_UDP		17

/* attach / detach */
struct ms_if_req {
	__u32 version;			/* MS_ABI_VERSION */
	__u32 flags;			/* 0 */
	char ifname[MS_IFNAMSIZ];
	__u8 reserved[24];		/* 0 */
};					/* 48 bytes */

/*
 * ms_port_req.flags: options of MS_IOC_PORT_BIND (other bits: EINVAL);
 * MS_IOC_INFO takes flags = 0 and reports the port's options in them.
 *   MS_PORT_F_QDISC_BYPASS  TX sync hands validated frames straight to the
 *       driver (one TX queue lock per burst of up to 64 frames, xmit_more
 *       on all but the last), like AF_PACKET's PACKET_QDISC_BYPASS: the
 *       interface's qdisc (tc, netem, shaping, its drop counters) never
 *       sees them; packet taps still do.  The TX queue is chosen by CPU.
 *       A frame the driver refuses (queue stopped, NETDEV_TX_BUSY, no
 *       carrier) falls back to dev_queue_xmit, counted in
 *       MS_STAT_TX_BYPASS_FALLBACK (and, like every frame, in
 *       MS_STAT_TX_SENT or MS_STAT_TX_ERROR).  Validation and the other
 *       counters are the same as without the flag.  Default: off
 *       (dev_queue_xmit).
 */
#define MS_PORT_F_QDISC_BYPASS	0x1
#define MS_PORT_F_ALL		MS_PORT_F_QDISC_BYPASS

/* port bind / info */
struct ms_port_req {
	__u32 version;			/* MS_ABI_VERSION */
	__u32 flags;			/* MS_PORT_F_* (bind), 0 (info) */
	char ifname[MS_IFNAMSIZ];	/* in */
	__u32 tx_slots;			/* in: power of two, or 0 = default */
	__u32 rx_slots;			/* in: power of two, or 0 = default */
	__u32 buf_size;			/* in: multiple of 64, or 0 = default */
	__u32 mem_size;			/* out: exact mmap length */
	__u32 ifindex;			/* out */
	__u32 port_id;			/* out: unique id, as in /proc */
	__u8 reserved[32];		/* 0 */
};					/* 80 bytes */

/* register / unregister a 3-tuple */
struct ms_reg_req {
	__u32 version;			/* MS_ABI_VERSION */
	__u32 flags;			/* 0 */
	__u8 family;			/* MS_FAMILY_INET / MS_FAMILY_INET6 */
	__u8 proto;			/* MS_PROTO_TCP / MS_PROTO_UDP */
	__u16 port;			/* host byte order, != 0 */
	__s32 sockfd;			/* proof of ownership (REGISTER) */
	__u8 addr[16];			/* network byte order */
	__u8 reserved[16];		/* 0 */
};					/* 48 bytes */

/*
 * Statistics: the one list of counters.  X(NAME, index, "name", "meaning")
 * defines MS_STAT_<NAME> = index (indices are ABI: never renumbered or
 * reused) and the counter's name in /proc/net/multistack and in the Python
 * library (NAME in lower case).  A new counter is one new line here, with
 * the next free index below MS_STAT_MAX.
 */
#define MS_STAT_LIST(X)										\
	X(RX_DELIVERED, 0, "rx_delivered", "frames put in an RX ring")				\
	X(RX_BYTES, 1, "rx_bytes", "bytes of those frames")					\
	X(RX_PASSED, 2, "rx_passed", "frames handed to the OS (iface)")				\
	X(RX_DROP_FULL, 3, "rx_drop_full", "matched, RX ring full: dropped")			\
	X(RX_DROP_SIZE, 4, "rx_drop_size", "matched, larger than buf_size")			\
	X(RX_MALFORMED, 5, "rx_malformed", "malformed IP: passed to the OS")			\
	X(RX_FRAGMENT, 6, "rx_fragment", "IP fragment: passed to the OS")			\
	X(RX_VLAN, 7, "rx_vlan", "802.1Q tagged: passed to the OS")				\
	X(TX_SENT, 8, "tx_sent", "frames given to dev_queue_xmit (or the driver, with bypass)")	\
	X(TX_BYTES, 9, "tx_bytes", "bytes of those frames")					\
	X(TX_REJ_NOT_OWNED, 10, "tx_rej_not_owned", "source tuple registered nowhere, "		\
	  "or its proof let it go")								\
	X(TX_REJ_OTHER_PORT, 11, "tx_rej_other_port", "source tuple owned by another port")	\
	X(TX_REJ_BAD_MAC, 12, "tx_rej_bad_mac", "Ethernet source != interface MAC")		\
	X(TX_REJ_MALFORMED, 13, "tx_rej_malformed", "not IPv4/IPv6 TCP/UDP, bad lengths")	\
	X(TX_REJ_RUNT, 14, "tx_rej_runt", "len < MS_MIN_FRAME")					\
	X(TX_REJ_OVERSIZE, 15, "tx_rej_oversize", "len > MTU + 14 or > buf_size")		\
	X(TX_REJ_BAD_SLOT, 16, "tx_rej_bad_slot", "buf_idx out of range")			\
	X(TX_REJ_FRAGMENT, 17, "tx_rej_fragment", "IP fragment")				\
	X(TX_ERROR, 18, "tx_error", "alloc failure, device down/error")				\
	X(RX_NOT_IP, 19, "rx_not_ip", "not IPv4/IPv6 TCP/UDP: passed")				\
	X(RX_DROP_BAD_SLOT, 20, "rx_drop_bad_slot", "matched, RX slot buf_idx corrupt")		\
	X(TX_BYPASS_FALLBACK, 21, "tx_bypass_fallback", "bypass asked, frame sent through "	\
	  "dev_queue_xmit instead: TX queue stopped or busy, no carrier "			\
	  "(also in TX_SENT or TX_ERROR)")							\
	X(RX_ICMP_DELIVERED, 22, "rx_icmp_delivered", "ICMP errors about a tuple of the "	\
	  "port put in its RX ring (also in RX_DELIVERED and RX_BYTES)")

#define MS_STAT_ENUM_ENTRY(NAME, index, name, doc) MS_STAT_##NAME = (index),
enum { MS_STAT_LIST(MS_STAT_ENUM_ENTRY) };
#undef MS_STAT_ENUM_ENTRY

#define MS_STAT_MAX		32	/* size of the arrays below */

#define MS_MIN_FRAME		(14 + 20 + 8)

struct ms_stats {
	__u32 version;			/* MS_ABI_VERSION */
	__u32 flags;			/* 0 */
	char ifname[MS_IFNAMSIZ];	/* in: "" on a port fd */
	__u8 reserved[8];		/* 0 */
	__u64 port[MS_STAT_MAX];	/* out */
	__u64 iface[MS_STAT_MAX];	/* out */
};					/* 544 bytes */

/*
 * Rejected TX frames (MS_IOC_REJECTS).  Each port keeps the last
 * MS_REJ_RING frames its TX syncs refused, with the MS_STAT_* counter that
 * counted the refusal (one of the TX_REJ_* ones; TX_ERROR, a failure
 * rather than a refusal, is not kept), the time and the frame's first
 * MS_REJ_SNAPLEN bytes (none for TX_REJ_BAD_SLOT: the buffer index is
 * out of range).  Older entries are overwritten.  Any fd of the device may
 * ask, for a port of an interface attached in the caller's namespace; the
 * caller (the credentials the fd was opened with) must be the port's
 * opener (same euid) or have CAP_NET_ADMIN in that namespace, the rule
 * that shows a port's pid in /proc/net/multistack (EPERM otherwise).
 * The newest min(count, kept) entries are copied to entries[], oldest
 * first; count = 0 only reads total and kept.  Entries are in the order
 * the frames were refused: within one TX sync, the length and buffer
 * index checks run on a burst before the content checks, and those before
 * the ownership check, so that order may differ from the slots'.
 */
#define MS_REJ_RING		64	/* entries kept per port */
#define MS_REJ_SNAPLEN		128	/* bytes kept of each frame */

struct ms_rej_entry {
	__u64 time_ns;			/* 0: CLOCK_REALTIME, ns */
	__u32 reason;			/* 8: MS_STAT_* index */
	__u32 len;			/* 12: the frame's length (slot.len) */
	__u32 caplen;			/* 16: bytes in data[] */
	__u32 reserved;			/* 20: 0 */
	__u8 data[MS_REJ_SNAPLEN];	/* 24: the frame's first bytes */
};					/* 152 bytes */

struct ms_rej_req {
	__u32 version;			/* MS_ABI_VERSION */
	__u32 flags;			/* 0 */
	__u32 port_id;			/* in: as in /proc/net/multistack */
	__u32 count;			/* in: room in entries[]; out: filled */
	__u64 entries;			/* in: user pointer to
					 *     struct ms_rej_entry[count] */
	__u64 total;			/* out: refusals kept since bind */
	__u32 kept;			/* out: in the ring now (total -
					 *      kept were overwritten) */
	__u32 ifindex;			/* out: the port's interface */
	char ifname[MS_IFNAMSIZ];	/* out */
	__u8 reserved[8];		/* 0 */
};					/* 64 bytes */

/* ---- shared memory (netmap layout) ---- */

#define MS_IF_SIZE		4096	/* region reserved for ms_netmap_if */
#define MS_RING_SLOTS_OFS	256	/* slot array offset in a ring */

struct ms_netmap_slot {
	__u32 buf_idx;			/* buffer index in the pool */
	__u16 len;			/* frame length in bytes */
	__u16 flags;			/* 0 */
	__u64 ptr;			/* unused, 0 */
};					/* 16 bytes */

struct ms_netmap_ring {
	__s64 buf_ofs;			/* 0: pool base relative to this ring */
	__u32 num_slots;		/* 8 */
	__u32 nr_buf_size;		/* 12 */
	__u16 ringid;			/* 16: 0 */
	__u16 dir;			/* 18: MS_RING_TX / MS_RING_RX */
	__u32 head;			/* 20: first slot owned by user space */
	__u32 cur;			/* 24: wakeup point, informational */
	__u32 tail;			/* 28: first slot owned by the kernel */
	__u32 flags;			/* 32: 0 */
	__u32 reserved0;		/* 36 */
	__u64 ts_sec;			/* 40: time of last sync */
	__u64 ts_usec;			/* 48 */
	__u8 reserved1[200];		/* 56 .. 255 */
	/* struct ms_netmap_slot slot[num_slots] at offset 256 */
};					/* 256 bytes */

#define MS_RING_TX		0
#define MS_RING_RX		1

struct ms_netmap_if {
	char ni_name[MS_IFNAMSIZ];	/* 0: interface name */
	__u32 ni_version;		/* 16: MS_ABI_VERSION */
	__u32 ni_flags;			/* 20: 0 */
	__u32 ni_tx_rings;		/* 24: 1 */
	__u32 ni_rx_rings;		/* 28: 1 */
	__u32 ni_bufs_head;		/* 32: 0 */
	__u32 ni_host_tx_rings;		/* 36: 0 */
	__u32 ni_host_rx_rings;		/* 40: 0 */
	__u32 ni_mem_size;		/* 44: whole area (= mem_size) */
	__s64 ring_ofs[2];		/* 48: [0] TX ring, [1] RX ring,
					 *     relative to this header */
	__u32 ni_nbufs;			/* 64: buffers in the pool */
	__u32 ni_buf_size;		/* 68: bytes per buffer */
	__u8 reserved[56];		/* 72 .. 127 */
};					/* 128 bytes */

/* ---- ioctls ---- */
#define MS_IOC_MAGIC		0xB7
#define MS_IOC_ATTACH		_IOW(MS_IOC_MAGIC, 1, struct ms_if_req)
#define MS_IOC_DETACH		_IOW(MS_IOC_MAGIC, 2, struct ms_if_req)
#define MS_IOC_PORT_BIND	_IOWR(MS_IOC_MAGIC, 3, struct ms_port_req)
#define MS_IOC_REGISTER		_IOW(MS_IOC_MAGIC, 4, struct ms_reg_req)
#define MS_IOC_UNREGISTER	_IOW(MS_IOC_MAGIC, 5, struct ms_reg_req)
#define MS_IOC_TXSYNC		_IO(MS_IOC_MAGIC, 6)
#define MS_IOC_RXSYNC		_IO(MS_IOC_MAGIC, 7)
#define MS_IOC_STATS		_IOWR(MS_IOC_MAGIC, 8, struct ms_stats)
#define MS_IOC_INFO		_IOWR(MS_IOC_MAGIC, 9, struct ms_port_req)
#define MS_IOC_REJECTS		_IOWR(MS_IOC_MAGIC, 10, struct ms_rej_req)

#endif /* _UAPI_MULTISTACK_H */
