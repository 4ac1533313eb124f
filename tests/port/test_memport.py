"""The in-memory pair's impairments, timing and bookkeeping."""

import pytest

from multistack.memport import memory_pair
from multistack.pcap import read_pcap


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def frame(i: int, size: int = 60) -> bytes:
    body = bytes.fromhex("020000000002020000000001") + b"\x88\xb5" + i.to_bytes(4, "big")
    return body + bytes(size - len(body))


def index(f) -> int:
    return int.from_bytes(bytes(f[14:18]), "big")


def send_all(port, frames, batch=100):
    for start in range(0, len(frames), batch):
        assert port.send_batch(frames[start:start + batch]) == len(frames[start:start + batch])
        port.sync()


def drain(port) -> list[int]:
    got = []
    while batch := port.recv_batch():
        got += [index(f) for f in batch]
    return got


def run(n=2000, **impairments) -> tuple[list[int], dict]:
    clock = FakeClock()
    a, b = memory_pair(clock=clock, **impairments)
    send_all(a, [frame(i) for i in range(n)])
    clock.now += 10  # past every delay
    got = drain(b)
    return got, a.stats().extra


def test_no_impairment_delivers_everything_in_order():
    got, extra = run()
    assert got == list(range(2000))
    assert extra == {}


def test_loss_rate_matches_configuration():
    got, extra = run(loss=0.3, seed=1)
    assert 0.25 * 2000 < extra["impair_lost"] < 0.35 * 2000
    assert len(got) == 2000 - extra["impair_lost"]
    assert got == sorted(got)


def test_duplication_rate_matches_configuration():
    got, extra = run(duplicate=0.2, seed=2)
    assert 0.15 * 2000 < extra["impair_duplicated"] < 0.25 * 2000
    assert len(got) == 2000 + extra["impair_duplicated"]
    assert set(got) == set(range(2000))


def test_reordering_lets_later_frames_overtake():
    clock = FakeClock()
    a, b = memory_pair(clock=clock, reorder=0.1, seed=3)
    send_all(a, [frame(i) for i in range(1000)])
    early = drain(b)  # frames picked for reordering are still held back
    held = a.stats().extra["impair_reordered"]
    assert 0.05 * 1000 < held < 0.15 * 1000
    assert len(early) == 1000 - held
    clock.now += 0.002
    late = drain(b)
    assert sorted(early + late) == list(range(1000))
    assert early + late != list(range(1000))


def test_same_seed_same_run_other_seed_other_run():
    settings = dict(loss=0.1, duplicate=0.1, reorder=0.1, n=500)
    assert run(seed=7, **settings) == run(seed=7, **settings)
    assert run(seed=7, **settings)[0] != run(seed=8, **settings)[0]


def test_delay_holds_frames_until_due_and_poll_at_tells_when():
    clock = FakeClock()
    a, b = memory_pair(clock=clock, delay=0.5)
    a.send_batch([frame(1)])
    a.sync()
    assert b.recv_batch() == []
    assert b.poll_at() == pytest.approx(100.5)
    clock.now = 100.49
    assert b.recv_batch() == []
    clock.now = 100.5
    assert [index(f) for f in b.recv_batch()] == [1]
    assert b.poll_at() is None


def test_directions_are_impaired_independently():
    clock = FakeClock()
    a, b = memory_pair(clock=clock)
    a.tx_impairment.loss = 1.0
    send_all(a, [frame(i) for i in range(10)])
    send_all(b, [frame(i) for i in range(10)])
    assert drain(b) == []
    assert drain(a) == list(range(10))


def test_drop_if_loses_exactly_the_chosen_frames():
    a, b = memory_pair(clock=FakeClock())
    a.tx_impairment.drop_if = lambda f: index(f) % 3 == 0
    send_all(a, [frame(i) for i in range(9)])
    assert drain(b) == [1, 2, 4, 5, 7, 8]
    assert a.stats().extra["impair_filtered"] == 3


def test_full_receive_queue_drops_and_counts():
    a, b = memory_pair(rx_capacity=5, clock=FakeClock())
    send_all(a, [frame(i) for i in range(8)])
    assert drain(b) == [0, 1, 2, 3, 4]
    assert b.stats().rx_dropped == 3


def test_frames_to_a_closed_peer_are_dropped_and_counted():
    a, b = memory_pair()
    b.close()
    send_all(a, [frame(1)])
    assert a.stats().tx_dropped == 1
    assert a.stats().extra["tx_peer_closed"] == 1


def test_received_views_are_released_by_the_next_recv_batch():
    a, b = memory_pair()
    send_all(a, [frame(1)])
    (view,) = b.recv_batch()
    assert index(view) == 1
    b.recv_batch()
    with pytest.raises(ValueError):
        bytes(view)


def test_sent_frames_are_copied():
    a, b = memory_pair()
    buf = bytearray(frame(1))
    a.send_batch([buf])
    buf[14:18] = (9).to_bytes(4, "big")
    a.sync()
    assert drain(b) == [1]


@pytest.mark.parametrize("bad", [dict(loss=1.5), dict(duplicate=-0.1), dict(reorder=2),
                                 dict(delay=-1), dict(mtu=10), dict(rx_capacity=0),
                                 dict(macs=(b"x", b"y"))])
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        memory_pair(**bad)


def test_pair_capture_records_what_each_side_received(tmp_path):
    path = tmp_path / "pair.pcap"
    a, b = memory_pair(pcap=path, loss=0.5, seed=4, clock=FakeClock())
    send_all(a, [frame(i) for i in range(20)])
    send_all(b, [frame(100)])
    got = drain(b) + drain(a)
    a.close()
    b.close()
    records = read_pcap(path)
    assert [index(r.data) for r in records] == got
    assert all(r.timestamp == pytest.approx(100.0) for r in records)


def test_frames_put_in_flight_call_on_in_flight():
    clock = FakeClock()
    a, b = memory_pair(clock=clock, delay=0.1)
    calls = []
    b.on_in_flight = lambda: calls.append(b.poll_at())
    send_all(a, [frame(1)])
    assert calls == [pytest.approx(100.1)]
    clock.now += 0.1
    assert drain(b) == [1]
    a.tx_impairment.delay = 0.0
    send_all(a, [frame(2)])  # receivable at once: the descriptor says so, no callback
    assert calls == [pytest.approx(100.1)]
    assert drain(b) == [2]
