"""The trio runtime: waiting, waking, deadlines, batches, over the memory pair."""

import time

import pytest
import trio
import trio.testing

from multistack.errors import PortClosedError
from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.udp import open_udp_socket

from hostkit import RecordingHandler, trio_test


def two_hosts(**link):
    a, b = memory_pair(**link)
    ha = Host(a, ["10.2.0.1/24", "fd00:2::1/64"], neighbours=OwnNeighbours())
    hb = Host(b, ["10.2.0.2/24", "fd00:2::2/64"], neighbours=OwnNeighbours())
    return ha, hb


async def echo_once(sock):
    data, peer = await sock.recvfrom()
    await sock.sendto(data, peer)


def test_app_output_is_flushed_without_incoming_traffic():
    # The sender's runtime sleeps on an idle port; sendto from an app task
    # must wake it (wakeup), or nothing would ever leave.
    async def main():
        ha, hb = two_hosts()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            server = open_udp_socket(hb, "10.2.0.2", 7)
            client = open_udp_socket(ha, "10.2.0.1", 0)
            nursery.start_soon(echo_once, server)
            await trio.sleep(0.05)  # both runtimes are asleep now
            with trio.fail_after(2):
                await client.sendto(b"wake up", ("10.2.0.2", 7))
                assert await client.recvfrom() == (b"wake up", server.getsockname())
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_link_delay_is_honoured_through_port_deadlines():
    # Frames in flight make no descriptor readable: the runtime must sleep
    # until the memory port's poll_at.  With the autojump clock the round
    # trip takes exactly the virtual delay.
    async def main():
        ha, hb = two_hosts(delay=0.25)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            server = open_udp_socket(hb, "fd00:2::2", 7)
            client = open_udp_socket(ha, "fd00:2::1", 0)
            nursery.start_soon(echo_once, server)
            start = trio.current_time()
            await client.sendto(b"slow", ("fd00:2::2", 7))
            assert (await client.recvfrom())[0] == b"slow"
            # NS + NA, then datagram + echo: four one-way trips (the echo's
            # neighbour is already known from the NS).
            assert trio.current_time() - start == pytest.approx(1.0)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_handler_deadlines_drive_on_timer():
    async def main():
        ha, _ = two_hosts()
        handler = RecordingHandler(deadline=trio.current_time() + 3)
        ha.attach(6, handler)
        steps = []          # runtime iterations: each reads the port once
        recv_batch = ha.port.recv_batch
        ha.port.recv_batch = lambda limit: steps.append(limit) or recv_batch(limit)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            await trio.sleep(2.9)
            assert handler.timer_calls == []
            await trio.sleep(0.2)
            assert handler.timer_calls == [pytest.approx(3.0, abs=0.01)]
            # A handler that sets an earlier deadline from outside calls wakeup().
            handler.deadline = trio.current_time() + 0.5
            ha.wakeup()
            await trio.sleep(0.6)
            assert len(handler.timer_calls) == 2
            # wakeup(at=...) only shortens the sleep: the timer fires at the new
            # deadline, and the runtime runs no iteration for the news itself.
            handler.deadline = trio.current_time() + 10
            await trio.sleep(1)
            iterations = len(steps)
            handler.deadline = trio.current_time() + 0.5
            ha.wakeup(at=handler.deadline)
            await trio.testing.wait_all_tasks_blocked()
            assert len(steps) == iterations and not ha._woken
            await trio.sleep(0.6)
            assert handler.timer_calls[2:] == [pytest.approx(5.2, abs=0.01)]
            # A later deadline than the one it sleeps until changes nothing.
            handler.deadline = trio.current_time() + 10
            ha.wakeup(at=trio.current_time() + 20)
            await trio.sleep(5)
            assert len(handler.timer_calls) == 3
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_deferred_work_runs_once_per_round_after_that_rounds_tasks():
    # Calls from several tasks in one scheduling round share one run of the
    # callback, which comes after all of them, with their output in one batch.
    async def main():
        ha, hb = two_hosts()
        src, dst = min(ha.ipv4_addresses), min(hb.ipv4_addresses)
        log = []

        def callback(now):
            log.append(("callback", ha._holding))
            for _ in range(2):
                ha.send_ip(src, dst, 17, b"\0" * 8, now=now)

        async def app(name):
            await trio.testing.wait_all_tasks_blocked()
            log.append(name)
            ha.defer(callback)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            ha.send_ip(src, dst, 17, b"\0" * 8)   # resolves the neighbour
            with trio.fail_after(5):
                while dst not in ha.neighbours.entries():
                    await trio.sleep(0.01)
            sent = ha.port.stats().tx_frames
            async with trio.open_nursery() as apps:
                apps.start_soon(app, "a")
                apps.start_soon(app, "b")
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(log[:2]) == ["a", "b"] and log[2:] == [("callback", True)]
            assert ha.port.stats().tx_frames == sent + 2 and ha.pending_output() == 0
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_deferred_work_runs_at_once_without_a_runtime():
    async def main():
        ha, _ = two_hosts()
        calls = []
        ha.defer(calls.append)
        assert calls == [trio.current_time()]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_error_in_deferred_work_ends_the_runtime_with_it():
    # The error is the runtime's to raise, as if it had made the call itself.
    async def main():
        ha, _ = two_hosts()

        def broken(now):
            raise RuntimeError("deferred work failed")

        async def call_soon():
            await trio.sleep(0.01)
            ha.defer(broken)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call_soon)
            with pytest.raises(RuntimeError, match="deferred work failed"):
                await ha.run()

    trio.run(main)


def test_bursts_are_drained_in_batches():
    async def main():
        ha, hb = two_hosts()
        hb.rx_batch = 16
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            server = open_udp_socket(hb, "10.2.0.2", 9, queue_limit=1000)
            client = open_udp_socket(ha, "10.2.0.1", 0)
            for i in range(300):
                await client.sendto(b"%d" % i, ("10.2.0.2", 9))
            with trio.fail_after(5):
                got = [int((await server.recvfrom())[0]) for _ in range(300)]
            assert got == list(range(300))
            nursery.cancel_scope.cancel()

    trio.run(main)


@trio_test
async def test_run_ends_with_port_closed_error():
    ha, _ = two_hosts()

    async def close_soon():
        await trio.sleep(0.01)
        ha.port.close()
        ha.wakeup()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(PortClosedError):
            await ha.run()


def test_held_output_goes_to_the_port_at_release_without_waking_the_runtime():
    # An application task's call holds output and releases it: the frames
    # leave in one batch from the task, and the sleeping runtime stays asleep.
    async def main():
        ha, hb = two_hosts()
        src, dst = min(ha.ipv4_addresses), min(hb.ipv4_addresses)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            ha.send_ip(src, dst, 17, b"\0" * 8)   # resolves the neighbour
            await trio.sleep(0.05)  # both runtimes sleep on idle ports now
            sent = ha.counters["tx_frames"]
            port_sent = ha.port.stats().tx_frames
            ha.hold_output()
            for _ in range(3):
                ha.send_ip(src, dst, 17, b"\0" * 8)
            assert ha.pending_output() == 3 and ha.port.stats().tx_frames == port_sent
            ha.release_output()
            assert ha.pending_output() == 0 and ha.port.stats().tx_frames == port_sent + 3
            assert ha.counters["tx_frames"] == sent + 3
            assert ha._wait_scope is not None and not ha._woken     # never woken
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_held_output_stays_queued_without_a_runtime():
    # Driven by hand: the release leaves the frame (here the ARP request the
    # packet waits on) for take_output.
    ha, hb = two_hosts()
    ha.hold_output()
    ha.send_ip(min(ha.ipv4_addresses), min(hb.ipv4_addresses), 17, b"\0" * 8, now=0.0)
    ha.release_output()
    assert len(ha.take_output()) == 1


def test_a_port_error_at_release_is_left_to_the_runtime():
    # The application's call must not fail for the port: the runtime meets the
    # error (and ends with it) as it would have without the release.
    async def main():
        ha, hb = two_hosts()
        src, dst = min(ha.ipv4_addresses), min(hb.ipv4_addresses)
        errors = []

        async def run_a():
            try:
                await ha.run()
            except PortClosedError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_a)
            nursery.start_soon(hb.run)
            ha.send_ip(src, dst, 17, b"\0" * 8)   # resolves the neighbour
            with trio.fail_after(5):
                while dst not in ha.neighbours.entries():
                    await trio.sleep(0.01)
            ha.hold_output()
            ha.send_ip(src, dst, 17, b"\0" * 8)
            ha.port.close()
            ha.release_output()                   # no exception here
            assert ha.pending_output() == 1
            with trio.fail_after(5):
                while not errors:                 # the runtime's
                    await trio.sleep(0.01)
            assert len(errors) == 1
            nursery.cancel_scope.cancel()

    trio.run(main)


def _burn(seconds):
    """Spend ``seconds`` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class _BurningHandler(RecordingHandler):
    def on_packet(self, src, dst, payload, now):
        _burn(0.05)
        super().on_packet(src, dst, payload, now)


def test_runtime_cpu_counts_the_hosts_work_not_the_applications():
    # The step (here a transport's receive) and deferred output count; an
    # application task's own work does not.  Unmeasured by default.
    async def main():
        ha, hb = two_hosts()
        assert ha.runtime_cpu is None and hb.runtime_cpu is None
        ha.runtime_cpu = hb.runtime_cpu = 0.0
        received = _BurningHandler()
        hb.attach(253, received)
        src, dst = min(ha.ipv4_addresses), min(hb.ipv4_addresses)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            await trio.testing.wait_all_tasks_blocked()
            before = ha.runtime_cpu, hb.runtime_cpu
            _burn(0.05)                                 # the application's work
            await trio.testing.wait_all_tasks_blocked()
            assert ha.runtime_cpu - before[0] < 0.025
            assert hb.runtime_cpu - before[1] < 0.025

            ha.defer(lambda now: _burn(0.05))          # the runtime helper's
            await trio.testing.wait_all_tasks_blocked()
            assert ha.runtime_cpu - before[0] >= 0.05

            ha.send_ip(src, dst, 253, b"measured")
            with trio.fail_after(5):
                while not received.packets:
                    await trio.sleep(0.01)
            assert hb.runtime_cpu - before[1] >= 0.05   # hb's step ran the receive
            nursery.cancel_scope.cancel()

        ha.runtime_cpu = None                           # switched off: no longer counted
        ha.defer(lambda now: _burn(0.01))
        assert ha.runtime_cpu is None

    trio.run(main)
