#!/bin/sh
# kmod/tools/vmtest.sh - run inside the VM as root (module loaded):
#   scripts/vm run -- kmod/tools/vmtest.sh
# Builds mstest, sets up two namespaces joined by veth, runs every mstest
# step, then detach/rmmod under traffic, and checks the kernel log.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${MSTEST_BIN:-/tmp/mstest}
cc -O2 -Wall -Wextra -o "$OUT" "$HERE/mstest.c" || exit 2
rc=0

setup() {
	ip netns del msa 2>/dev/null; ip netns del msb 2>/dev/null
	ip netns add msa && ip netns add msb
	ip link add va type veth peer name vb
	ip link set va netns msa && ip link set vb netns msb
	ip -n msa addr add 10.0.0.1/24 dev va
	ip -n msb addr add 10.0.0.2/24 dev vb
	ip -n msa addr add fd00::1/64 dev va nodad
	ip -n msb addr add fd00::2/64 dev vb nodad
	ip -n msa link set va up; ip -n msb link set vb up
	ip -n msa link set lo up; ip -n msb link set lo up
}

modprobe 8021q 2>/dev/null
KO=${MULTISTACK_KO:-$HERE/../multistack.ko}
lsmod | grep -q '^multistack' || insmod "$KO" || exit 2
dmesg -C 2>/dev/null
setup
ip netns exec msa "$OUT" attach all || rc=1
echo "== /proc/net/multistack (msa)"
ip netns exec msa cat /proc/net/multistack
echo "== passthrough: ping while attached"
ip netns exec msb ping -c 2 -W 2 10.0.0.1 >/dev/null && echo "ok   ping" || { echo "FAIL ping"; rc=1; }
echo "== ioctl fuzz"
cc -O2 -Wall -o "$OUT-fuzz" "$HERE/ioctl_fuzz.c" || exit 2
ip netns exec msa "$OUT-fuzz" ${MS_FUZZ_ITERS:-20000} 7 || rc=1
echo "== two ioctl fuzzers at once"
ip netns exec msa "$OUT-fuzz" ${MS_FUZZ_ITERS:-10000} 11 > /tmp/fuzz2.out &
F2=$!
ip netns exec msa "$OUT-fuzz" ${MS_FUZZ_ITERS:-10000} 13 | head -1 || rc=1
wait $F2 || rc=1
head -1 /tmp/fuzz2.out
ip netns exec msa cat /proc/net/multistack | head -5
ip netns exec msa "$OUT" detach || rc=1
ip netns exec msa "$OUT" attach vanish || rc=1

echo "== detach and rmmod under traffic"
setup
ip netns exec msa "$OUT" attach || rc=1
ip netns exec msb ping -f -w 3 10.0.0.1 >/dev/null 2>&1 &
P1=$!
ip netns exec msa "$OUT" flood >/dev/null &
P2=$!
sleep 1
ip netns exec msa "$OUT" detach || rc=1
ip netns exec msa "$OUT" attach || rc=1
sleep 0.5
rmmod multistack && echo "ok   rmmod under traffic" || { echo "FAIL rmmod"; rc=1; }
wait $P1 $P2
insmod "$KO" && echo "ok   reload" || rc=1
if modprobe bridge 2>/dev/null; then
	ip -n msa link add msbr type bridge && ip -n msa link set va master msbr
	ip netns exec msa "$OUT" attach_ebusy || rc=1
	ip -n msa link del msbr
fi
ip netns del msa; ip netns del msb
sleep 1
echo "== kernel log"
dmesg | grep -v -e "multistack: loaded" -e "multistack: unloaded" -e "IPv6: ADDRCONF" -e "entered promiscuous" -e "link becomes ready" | grep -i -e warn -e bug -e oops -e leak -e "call trace" -e error && { echo "FAIL dmesg not clean"; rc=1; } || echo "ok   dmesg clean"
echo "vmtest rc=$rc"
exit $rc
