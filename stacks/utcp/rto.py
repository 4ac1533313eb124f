"""Retransmission timeout estimation, RFC 6298."""

from __future__ import annotations


class RtoEstimator:
    """SRTT/RTTVAR smoothing with exponential backoff.

    ``rto`` is the current timeout including backoff; a new RTT sample
    recomputes it and so ends any backoff (RFC 6298 section 5, note on 5.7).
    """

    ALPHA = 1 / 8
    BETA = 1 / 4
    K = 4

    def __init__(self, *, initial: float = 1.0, minimum: float = 1.0, maximum: float = 60.0,
                 granularity: float = 0.001) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.granularity = granularity
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self._base = initial
        self.backoffs = 0

    @property
    def rto(self) -> float:
        return min(self.maximum, self._base * (1 << self.backoffs))

    def sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        srtt, rttvar = self.srtt, self.rttvar
        if srtt is None or rttvar is None:
            srtt, rttvar = rtt, rtt / 2
        else:
            rttvar = (1 - self.BETA) * rttvar + self.BETA * abs(srtt - rtt)
            srtt = (1 - self.ALPHA) * srtt + self.ALPHA * rtt
        self.srtt, self.rttvar = srtt, rttvar
        self._base = min(self.maximum, max(self.minimum,
                                           srtt + max(self.granularity, self.K * rttvar)))
        self.backoffs = 0

    def back_off(self) -> None:
        """Double the timeout after an expiry (RFC 6298 5.5), up to the maximum."""
        if self._base * (1 << self.backoffs) < self.maximum:
            self.backoffs += 1

    def fall_back(self, seconds: float) -> None:
        """RFC 6298 5.7: a SYN timed out and no RTT was measured: data starts with
        an RTO of at least ``seconds``, without the handshake's backoff."""
        if self.srtt is None:
            self._base = min(self.maximum, max(self._base, seconds))
            self.backoffs = 0

    def reset_backoff(self) -> None:
        self.backoffs = 0
