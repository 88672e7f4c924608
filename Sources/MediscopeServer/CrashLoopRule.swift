/// The master's rule for workers that die without a request (at start, or idle), the only crashes
/// that can mean a broken deployment (see `ProcessManagerConfig.crashLimit`). Plain arithmetic on the
/// times it is given, so it is tested without processes.
///
/// Every such crash is followed by a short back-off when the worker lived under a second (0.1 s,
/// doubling up to 5 s), as before. More than `limit` of them (all pools) within `window` seconds start
/// a crash loop: from then on each crash of a crashing pool doubles its delay (1 s up to `maxDelay`).
/// A pool leaves the loop once it has all its workers up and none of them crashed without a request
/// for `window` seconds; the loop ends when no pool is backing off.
struct CrashLoopRule {
    let limit: Int
    let window: Double
    let maxDelay: Double

    /// Crashes without a request within the window, oldest first.
    private(set) var recent: [Double] = []
    /// Pools backing off a crash loop: their delay now, and their latest crash.
    private(set) var looping: [Int: (delay: Double, last: Double)] = [:]
    /// Short back-off after a worker that crashed within a second of its start, per pool.
    private var quick: [Int: Double] = [:]
    /// When the current crash loop began; nil when there is none.
    private(set) var since: Double?

    init(limit: Int, window: Double, maxDelay: Double) {
        self.limit = limit; self.window = window; self.maxDelay = max(maxDelay, 0.1)
    }

    init(_ config: ProcessManagerConfig) {
        self.init(limit: config.crashLimit, window: config.crashWindowSeconds, maxDelay: config.crashBackoffMaxSeconds)
    }

    /// A worker of `pool` that lived `lived` seconds ended abnormally without a request at `now`:
    /// how long to wait before starting its replacement, and whether this crash began a crash loop.
    mutating func crashed(pool: Int, at now: Double, lived: Double) -> (delay: Double, began: Bool) {
        recent.removeAll { $0 < now - window }
        recent.append(now)
        let short = lived < 1 ? min(max((quick[pool] ?? 0.05) * 2, 0.1), 5) : 0
        quick[pool] = short
        if let state = looping[pool] {
            looping[pool] = (min(state.delay * 2, maxDelay), now)
        } else if recent.count > limit {
            looping[pool] = (min(1, maxDelay), now)
        }
        let began = since == nil && !looping.isEmpty
        if began { since = now }
        return (max(short, looping[pool]?.delay ?? 0), began)
    }

    /// A worker of `pool` ended normally (recycled, told to stop): its quick back-off is over.
    mutating func endedNormally(pool: Int) { quick[pool] = 0 }

    /// Lets pools that are whole again (`whole(pool)`: all their workers up) and quiet for `window`
    /// leave the loop. Returns true when that ended the crash loop.
    mutating func settle(at now: Double, whole: (Int) -> Bool) -> Bool {
        guard since != nil else { return false }
        for (pool, state) in looping where now - state.last >= window && whole(pool) { looping[pool] = nil }
        guard looping.isEmpty else { return false }
        since = nil
        return true
    }

    /// Whether a crash loop is on now.
    var isLooping: Bool { since != nil }
    /// The longest delay of any pool in the loop (0 when none).
    var longestDelay: Double { looping.values.map(\.delay).max() ?? 0 }
}
