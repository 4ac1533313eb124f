"""Congestion control behind one interface: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).

The connection detects loss (three duplicate ACKs, an RTO) and tells the
controller; the controller owns ``cwnd`` and ``ssthresh`` in bytes.  Fast
recovery follows RFC 6582 for both algorithms: they differ in the window
after a loss and in growth during congestion avoidance.
"""

from __future__ import annotations

import abc


def initial_window(smss: int) -> int:
    """RFC 5681 section 3.1 initial window."""
    if smss > 2190:
        return 2 * smss
    if smss > 1095:
        return 3 * smss
    return 4 * smss


class CongestionControl(abc.ABC):
    name = "abstract"

    def __init__(self, smss: int) -> None:
        self.smss = smss
        self.cwnd = initial_window(smss)
        self.ssthresh = 1 << 30        # "arbitrarily high" (RFC 5681 3.1)
        self.in_recovery = False

    def set_smss(self, smss: int) -> None:
        """The segment size changed (path MTU); keep the window in whole segments."""
        if smss != self.smss:
            self.cwnd = max(smss, self.cwnd * smss // self.smss)
            self.smss = smss

    # --- events from the connection -------------------------------------------------

    def on_ack(self, acked: int, flight: int, now: float, srtt: float | None) -> None:
        """New data was acknowledged outside recovery."""
        if self.cwnd < self.ssthresh:
            # Slow start, with appropriate byte counting limited to one SMSS (RFC 5681 3.1).
            self.cwnd += min(acked, self.smss)
        else:
            self._congestion_avoidance(acked, now, srtt)

    def on_enter_recovery(self, flight: int, now: float) -> None:
        """Three duplicate ACKs: RFC 5681 3.2 steps 2 and 3."""
        self.ssthresh = self._ssthresh_after_loss(flight, now)
        self.cwnd = self.ssthresh + 3 * self.smss
        self.in_recovery = True

    def on_dupack_in_recovery(self) -> None:
        """RFC 5681 3.2 step 4: each further duplicate inflates the window."""
        self.cwnd += self.smss

    def on_partial_ack(self, acked: int) -> None:
        """RFC 6582 3.2 step 3: deflate by the amount acknowledged, add back one SMSS."""
        self.cwnd = max(self.smss, self.cwnd - acked)
        if acked >= self.smss:
            self.cwnd += self.smss

    def on_exit_recovery(self, flight: int) -> None:
        """RFC 6582 3.2 step 3, full acknowledgement: deflate the window."""
        self.cwnd = min(self.ssthresh, max(flight, self.smss) + self.smss)
        self.in_recovery = False

    def restart_after_idle(self) -> None:
        """RFC 5681 4.1: nothing sent for an RTO, so the ACK clock is gone: restart
        from min(IW, cwnd).  ssthresh keeps 3/4 of the old window, as Linux does, so
        slow start climbs back to it."""
        self.ssthresh = max(self.ssthresh, 3 * self.cwnd // 4)
        self.cwnd = min(self.cwnd, initial_window(self.smss))

    def on_timeout(self, flight: int, now: float) -> None:
        """RTO expiry: RFC 5681 equation (4) and the loss window of one segment."""
        self.ssthresh = self._ssthresh_after_loss(flight, now)
        self.cwnd = self.smss
        self.in_recovery = False

    # --- what the algorithms differ in ---------------------------------------------

    @abc.abstractmethod
    def _ssthresh_after_loss(self, flight: int, now: float) -> int: ...

    @abc.abstractmethod
    def _congestion_avoidance(self, acked: int, now: float, srtt: float | None) -> None: ...


class NewReno(CongestionControl):
    name = "newreno"

    def __init__(self, smss: int) -> None:
        super().__init__(smss)
        self._acked_in_ca = 0

    def _ssthresh_after_loss(self, flight: int, now: float) -> int:
        return max(flight // 2, 2 * self.smss)

    def _congestion_avoidance(self, acked: int, now: float, srtt: float | None) -> None:
        # One SMSS per window's worth of acknowledged bytes (RFC 5681 3.1, byte counting).
        self._acked_in_ca += acked
        if self._acked_in_ca >= self.cwnd:
            self._acked_in_ca -= self.cwnd
            self.cwnd += self.smss


class Cubic(CongestionControl):
    """RFC 9438, with the Reno-friendly region and fast convergence."""

    name = "cubic"
    C = 0.4
    BETA = 0.7

    def __init__(self, smss: int) -> None:
        super().__init__(smss)
        self._epoch_start: float | None = None
        self._w_max = 0.0              # segments
        self._k = 0.0
        self._w_est = 0.0              # segments, the Reno-friendly estimate
        self._cwnd_at_epoch = 0.0

    def _ssthresh_after_loss(self, flight: int, now: float) -> int:
        segments = self.cwnd / self.smss
        # Fast convergence (RFC 9438 4.7): release bandwidth when W_max shrinks.
        if segments < self._w_max:
            self._w_max = segments * (1 + self.BETA) / 2
        else:
            self._w_max = segments
        self._epoch_start = None
        return max(int(self.cwnd * self.BETA), 2 * self.smss)

    def restart_after_idle(self) -> None:
        super().restart_after_idle()
        self._epoch_start = None       # the cubic curve starts again from here

    def _congestion_avoidance(self, acked: int, now: float, srtt: float | None) -> None:
        segments = self.cwnd / self.smss
        if self._epoch_start is None:
            self._epoch_start = now
            if segments < self._w_max:
                self._k = ((self._w_max - segments) / self.C) ** (1 / 3)
            else:
                self._k = 0.0
                self._w_max = segments
            self._w_est = segments
            self._cwnd_at_epoch = segments
        rtt = srtt if srtt is not None else 0.1
        t = now - self._epoch_start + rtt
        target = self.C * (t - self._k) ** 3 + self._w_max
        # Reno-friendly estimate (RFC 9438 4.3).
        alpha = 3 * (1 - self.BETA) / (1 + self.BETA)
        self._w_est += alpha * (acked / self.smss) / max(segments, 1.0)
        if self._w_est > target:
            target = self._w_est
        target = min(target, 1.5 * segments)
        if target > segments:
            increment = (target - segments) / segments * (acked / self.smss)
            self.cwnd += max(1, int(increment * self.smss))
        else:
            self.cwnd += max(1, int(self.smss * (acked / self.smss) / (100 * segments)))


ALGORITHMS: dict[str, type[CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}
