/// How long a client waits between attempts to reach the daemon: capped exponential backoff
/// with jitter, so that many clients of one restarted daemon do not reconnect in lockstep.
///
/// The first attempt after a loss goes at once (a `systemctl restart` is often over before
/// the client notices); attempt n ≥ 1 waits `initial × multiplier^(n-1)`, capped at
/// `maximum`, of which a random fraction `jitter` is taken off.
public struct NanaReconnectBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Between 0 (always the full delay) and 1 (anywhere from nothing to the full delay).
    public var jitter: Double

    /// 10 ms, doubling, capped at 500 ms, with half of it jittered. A local socket refuses at
    /// once, so trying often is cheap, and a restarted daemon is served again within about half
    /// a second of accepting.
    public init(initial: Duration = .milliseconds(10), maximum: Duration = .milliseconds(500), multiplier: Double = 2, jitter: Double = 0.5) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The wait before attempt `attempt` (0 is the first after a loss); `random` in [0, 1).
    /// Settings out of range are taken at their nearest sensible value: delays of at least
    /// 1 ms and at most a day, a multiplier of at least 1, a jitter between 0 and 1.
    public func delay(beforeAttempt attempt: Int, random: Double) -> Duration {
        guard attempt > 0 else { return .zero }
        // Never less than a millisecond: a zero or negative setting would retry in a busy loop.
        let floor = 0.001
        let cap = min(max(Self.seconds(maximum), floor), 86_400)  // and never over a day
        var full = max(Self.seconds(initial), floor)
        for _ in 1..<attempt where full < cap { full *= max(multiplier, 1) }
        full = min(full, cap)
        let fraction = 1 - min(max(jitter, 0), 1) * min(max(random, 0), 1)
        return .nanoseconds(Int64(max(full * fraction, floor) * 1e9))
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
