using EdgeProxy.Configuration;
using EdgeProxy.Health;

namespace EdgeProxy.Balancing;

/// <summary>The outcome of one pick.</summary>
internal readonly record struct Pick(int Index, Admission Admission, bool Panic, bool Home = false)
{
    public static readonly Pick None = new(-1, Admission.Refused, false);

    public bool Found => Index >= 0;
}

/// <summary>
/// Chooses a backend for one attempt. Order: (1) affinity with bounded loads: the key's backends in
/// its own deterministic <see cref="PreferenceOrder"/>, taking the first that is admissible and whose
/// in-flight load stays within the model's balance factor of its weighted fair share, so a pinned
/// client stays home while load is even, spills to the same next backend every time when its home
/// is busy or down, and returns when that passes; (2) the model's balance policy: smooth weighted
/// round-robin (skipping the turns of backends that are out) or least outstanding requests per unit
/// of weight (ties in round-robin order); (3) panic mode — every backend of the model is down, so try one anyway rather than
/// refuse (unless configured to fail fast). Lock-free and allocation-free: Interlocked cursor,
/// Volatile reads of the in-flight counters, stack scratch.
/// </summary>
internal static class BackendSelector
{
    /// <param name="route">The model's snapshot.</param>
    /// <param name="affinityKey">Hash of the client key, or null for no affinity.</param>
    /// <param name="tried">Bit i set: backend i already failed this request (failover).</param>
    /// <param name="now">TimeProvider timestamp.</param>
    /// <param name="allowPanic">Whether to fall back to unhealthy backends when none is admissible.</param>
    /// <param name="opening">
    /// Set when the key is a conversation's (prefix affinity): the key of its shared opening (system
    /// prompt), which places it while new; then it is remembered (<see cref="ConversationTable"/>).
    /// </param>
    public static Pick Select(ModelRoute route, ulong? affinityKey, ulong tried, long now, bool allowPanic, ulong? opening = null)
    {
        if (affinityKey is ulong key && route.Affinity is { } table)
        {
            var pinned = opening is ulong shared && route.Conversations is { } conversations
                ? SelectConversation(route, conversations, table, key, shared, tried, now)
                : SelectPinned(route, table, key, tried, now, route.BalanceFactor);
            if (pinned.Found)
            {
                return pinned;
            }
        }

        var pick = route.Balance == BalancePolicy.LeastOutstanding
            ? SelectLeastOutstanding(route, tried, now)
            : SelectRoundRobin(route, tried, now);
        if (pick.Found || !allowPanic || IsBusy(route, tried, now, allowPanic: false))
        {
            return pick;   // (a healthy backend that is only full is waited for, never panicked past)
        }

        // Panic: nothing is admissible. Round-robin over the backends not yet tried, ignoring health
        // but not capacity.
        var sequence = route.Sequence;
        var start = route.NextCursor();
        for (var step = 0; step < sequence.Length; step++)
        {
            var index = sequence[(int)((uint)(start + step) % (uint)sequence.Length)];
            if ((tried & (1UL << index)) == 0 && route.Backends[index].State.HasRoom)
            {
                return new Pick(index, Admission.Admitted, true);
            }
        }
        return Pick.None;
    }

    /// <summary>
    /// After a pick found nothing: whether that was because backends that would take the request
    /// are full (at their capacity), so the request should wait for a slot rather than fail. With
    /// panic allowed, any full backend counts; without it, only one health admits.
    /// </summary>
    public static bool IsBusy(ModelRoute route, ulong tried, long now, bool allowPanic)
    {
        var backends = route.Backends;
        for (var i = 0; i < backends.Length; i++)
        {
            var state = backends[i].State;
            if ((tried & (1UL << i)) == 0 && !state.HasRoom && (allowPanic || state.HealthAdmits(now)))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether another backend than those in <paramref name="tried"/> is healthy enough to take a request (full or not).</summary>
    public static bool AnyOther(ModelRoute route, ulong tried, long now)
    {
        var backends = route.Backends;
        for (var i = 0; i < backends.Length; i++)
        {
            if ((tried & (1UL << i)) == 0 && backends[i].State.HealthAdmits(now))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Whether a pick could find a backend now, as <see cref="Select"/> decides it: an untried
    /// backend health admits has room, or (panic allowed) none is admitted by health and one has
    /// room. A waiting request is woken only for a slot it can take.
    /// </summary>
    public static bool HasRoom(ModelRoute route, ulong tried, long now, bool allowPanic)
    {
        var backends = route.Backends;
        var admitted = false;
        var room = false;
        for (var i = 0; i < backends.Length; i++)
        {
            var state = backends[i].State;
            if ((tried & (1UL << i)) != 0)
            {
                continue;
            }
            if (state.HealthAdmits(now))
            {
                admitted = true;
                if (state.HasRoom)
                {
                    return true;
                }
            }
            room |= state.HasRoom;
        }
        return allowPanic && !admitted && room;
    }

    /// <summary>
    /// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam; HAProxy's
    /// hash-balance-factor, Envoy's bounded-load ring hash): walk the key's preference order and take
    /// the first backend that may be admitted and for which
    /// (inflight_b + 1) ≤ ceil(factor × (total_inflight + 1) × weight_b / total_weight), totals over
    /// the backends that may take this request. Some backend always satisfies the bound, so only
    /// slow start or a lost trial race sends the request on to the balance policy.
    /// </summary>
    private static Pick SelectPinned(ModelRoute route, AffinityTable table, ulong key, ulong tried, long now, double factor)
    {
        var backends = route.Backends;

        // 1. The load the bound is measured against.
        var (total, totalWeight) = Load(backends, tried, now);
        if (totalWeight == 0)
        {
            return Pick.None;
        }

        // 2. The key's backends in its own order: the first within the bound takes the request.
        Span<double> scratch = stackalloc double[backends.Length];
        var order = new PreferenceOrder(backends, table, key, scratch);
        while (order.MoveNext(out var index))
        {
            if ((tried & (1UL << index)) != 0 || !backends[index].State.MayAdmit(now)
                || !WithinBound(backends[index].State.InFlight, backends[index].Weight, total, totalWeight, factor))
            {
                continue;
            }
            var admission = Admit(backends, index, tried, now, out var ramping);
            if (admission != Admission.Refused && !ramping)
            {
                return new Pick(index, admission, false);
            }
        }
        return Pick.None;
    }

    /// <summary>
    /// Prefix affinity: a conversation seen before goes back to the backend that served it last (its
    /// KV cache) while that backend is within the model's bound (and, over a learnt batch, within its
    /// <see cref="BackendState.HomeCapacity"/>: a short wait there beats computing the conversation
    /// again elsewhere), else on along its key's order. A
    /// new one has only its opening (the system prompt it shares with others) possibly cached: it
    /// walks its opening's order, where conversations with the same system prompt went before, with
    /// no headroom over the fair share (factor 1: the first backend at or below the average load per
    /// weight takes it), so new conversations are placed by cache and load together. Either way the
    /// backend chosen is recorded for the next turn.
    /// </summary>
    private static Pick SelectConversation(ModelRoute route, ConversationTable conversations, AffinityTable table, ulong key, ulong opening, ulong tried, long now)
    {
        var known = conversations.TryGet(key, out var tag);
        if (known && Array.IndexOf(route.Tags, tag) is var home and >= 0 && (tried & (1UL << home)) == 0 && route.Backends[home].State.MayAdmit(now, home: true))
        {
            var (total, totalWeight) = Load(route.Backends, tried, now);
            if (WithinBound(route.Backends[home].State.InFlight, route.Backends[home].Weight, total, totalWeight, route.BalanceFactor)
                && Admit(route.Backends, home, tried, now, out var ramping, home: true) is var admission and not Admission.Refused && !ramping)
            {
                return new Pick(home, admission, false, Home: true);
            }
        }
        var pick = known ? SelectPinned(route, table, key, tried, now, route.BalanceFactor) : SelectPinned(route, table, opening, tried, now, 1.0);
        if (pick.Found)
        {
            conversations.Record(key, route.Tags[pick.Index]);
        }
        return pick;
    }

    /// <summary>
    /// The load a bound is measured against: requests in flight and weight, over the backends health
    /// lets take this request — full ones included: the busiest backends are part of the average a
    /// key's backend is compared with, or a fleet near its capacity would move keys off their caches
    /// for being merely as busy as everyone else.
    /// </summary>
    private static (long Total, long TotalWeight) Load(BackendEntry[] backends, ulong tried, long now)
    {
        long total = 0;
        long totalWeight = 0;
        for (var i = 0; i < backends.Length; i++)
        {
            if ((tried & (1UL << i)) == 0 && backends[i].State.HealthAdmits(now))
            {
                total += backends[i].State.InFlight;
                totalWeight += backends[i].Weight;
            }
        }
        return (total, totalWeight);
    }

    /// <summary>
    /// The bounded-load rule for one backend (the request being placed counts as one more). A backend
    /// may always hold <see cref="BoundFloor"/> requests: at a load that low the published rule moves
    /// a key as soon as its backend holds one request and the others none (1 &gt; ⌈1.25 × 2/3⌉ with
    /// three backends), which loses the key's cache while the fleet is idle, and makes the pick
    /// depend on whether the previous request's end was already counted.
    /// </summary>
    internal static bool WithinBound(long inFlight, int weight, long totalInFlight, long totalWeight, double factor)
        => inFlight + 1 <= Math.Max(BoundFloor, Math.Ceiling(factor * (totalInFlight + 1) * weight / totalWeight));

    /// <summary>Requests a backend may hold whatever the others hold (see <see cref="WithinBound"/>).</summary>
    internal const int BoundFloor = 2;

    /// <summary>
    /// Smooth weighted round-robin from the precomputed sequence: one Interlocked increment, skipping
    /// the turns of backends that are out.
    /// </summary>
    private static Pick SelectRoundRobin(ModelRoute route, ulong tried, long now)
    {
        var backends = route.Backends;
        var sequence = route.Sequence;
        var start = route.NextCursor();
        var deferred = -1;
        for (var step = 0; step < sequence.Length; step++)
        {
            var index = sequence[(int)((uint)(start + step) % (uint)sequence.Length)];
            var admission = Admit(backends, index, tried, now, out var ramping);
            if (admission == Admission.Refused)
            {
                continue;
            }
            if (ramping)
            {
                // Ramping up: take its turn only with probability = its ramp factor, but keep it as
                // a last resort so a lone recovering backend still serves.
                deferred = index;
                continue;
            }
            if (step > 0)
            {
                // The turns passed over are consumed, so the share of a backend that is out is
                // spread over the others by weight instead of going to whichever backend follows
                // it in the sequence (which would get double load with 1:1:1 and one down).
                route.SkipCursor(step);
            }
            return new Pick(index, admission, false);
        }
        return deferred >= 0 ? new Pick(deferred, Admission.Admitted, false) : Pick.None;
    }

    /// <summary>
    /// Least outstanding requests, weighted: the admissible backend with the smallest
    /// inflight / (weight × slow-start factor). The gateway's own in-flight counters are exact and
    /// current (an engine's queue metrics lag seconds). Ties go to the first tied backend in the smooth
    /// weighted round-robin order from the cursor, so light or serial traffic (everyone at zero) is
    /// spread exactly like round_robin and weights hold at every load. A recovering backend's weight is
    /// scaled by its ramp, and it wins only the ramp's share of its draws, so its empty queue does not
    /// draw every request at once. Candidates are
    /// compared without admitting them, so an ejected backend's half-open trial is taken only when that
    /// backend is the one chosen.
    /// </summary>
    private static Pick SelectLeastOutstanding(ModelRoute route, ulong tried, long now)
    {
        var backends = route.Backends;
        var sequence = route.Sequence;
        var start = route.NextCursor();
        var excluded = tried;
        var deferred = -1;
        for (var attempt = 0; attempt < backends.Length; attempt++)
        {
            // 1. The lowest load per unit of weight, and every backend that has it.
            var best = -1;
            var bestScore = 0.0;
            var tied = 0UL;
            for (var i = 0; i < backends.Length; i++)
            {
                var state = backends[i].State;
                if ((excluded & (1UL << i)) != 0 || !state.MayAdmit(now))
                {
                    continue;
                }
                var score = state.InFlight / (backends[i].Weight * state.SlowStartFactor(now));
                if (best < 0 || score < bestScore)
                {
                    best = i;
                    bestScore = score;
                    tied = 1UL << i;
                }
                else if (score == bestScore)
                {
                    tied |= 1UL << i;
                }
            }
            if (best < 0)
            {
                break;
            }

            // 2. Several equally loaded: the round-robin turn decides (bounded by the sequence length).
            if ((tied & (tied - 1)) != 0)
            {
                for (var step = 0; step < sequence.Length; step++)
                {
                    var index = sequence[(int)((uint)(start + step) % (uint)sequence.Length)];
                    if ((tied & (1UL << index)) != 0)
                    {
                        best = index;
                        break;
                    }
                }
            }

            // 3. Admit only the chosen one. A ramping backend takes the request with probability =
            //    its ramp factor (an idle one scores 0 however its weight is scaled); otherwise it is
            //    kept as a last resort, as in round-robin.
            var admission = Admit(backends, best, excluded, now, out var ramping);
            if (admission != Admission.Refused && !ramping)
            {
                return new Pick(best, admission, false);
            }
            if (ramping)
            {
                deferred = best;
            }
            // Ramping, gone out or lost the race for its trial slot since the comparison: choose again without it.
            excluded |= 1UL << best;
        }
        return deferred >= 0 ? new Pick(deferred, Admission.Admitted, false) : Pick.None;
    }

    /// <summary>
    /// Whether backend <paramref name="index"/> may take this attempt: not already tried, admitted by
    /// its health state. <paramref name="ramping"/> is set when it is admitted but in slow start and
    /// lost the draw for this turn (callers skip it or keep it as a last resort).
    /// </summary>
    private static Admission Admit(BackendEntry[] backends, int index, ulong tried, long now, out bool ramping, bool home = false)
    {
        ramping = false;
        if ((tried & (1UL << index)) != 0)
        {
            return Admission.Refused;
        }
        var admission = backends[index].State.TryAdmit(now, home);
        ramping = admission == Admission.Admitted && !PassesSlowStart(backends[index].State, now);
        return admission;
    }

    private static bool PassesSlowStart(BackendState state, long now)
    {
        var factor = state.SlowStartFactor(now);
        return factor >= 1.0 || Random.Shared.NextDouble() < factor;
    }
}
