using EdgeProxy.Health;
using EdgeProxy.Routing;

namespace EdgeProxy.Balancing;

/// <summary>The outcome of one pick.</summary>
internal readonly record struct Pick(int Index, Admission Admission, bool Panic)
{
    public static readonly Pick None = new(-1, Admission.Refused, false);

    public bool Found => Index >= 0;
}

/// <summary>
/// Chooses a backend for one attempt. Order: (1) the client's affinity slot, two deterministic
/// fall-back slots and then a rendezvous ranking, so a pinned client whose backend is down lands on
/// the same substitute every time and returns home when it recovers; (2) smooth weighted
/// round-robin, skipping the turns of backends that are out; (3) panic mode — every
/// backend of the model is down, so try one anyway rather than refuse (unless configured to fail fast).
/// Lock-free: one Interlocked.Increment and a few array reads.
/// </summary>
internal static class BackendSelector
{
    private const int AffinityProbes = 3;

    /// <param name="route">The model's snapshot.</param>
    /// <param name="affinityKey">Hash of the client key, or null for plain round-robin.</param>
    /// <param name="tried">Bit i set: backend i already failed this request (failover).</param>
    /// <param name="now">TimeProvider timestamp.</param>
    /// <param name="allowPanic">Whether to fall back to unhealthy backends when none is admissible.</param>
    public static Pick Select(ModelRoute route, ulong? affinityKey, ulong tried, long now, bool allowPanic)
    {
        var backends = route.Backends;
        if (affinityKey is ulong key && route.Affinity is { } table)
        {
            for (var probe = 0; probe < AffinityProbes; probe++)
            {
                var hash = probe == 0 ? key : StableHash.Mix(key + (ulong)probe * 0x9E3779B97F4A7C15UL);
                var index = table.Lookup(hash);
                var admission = Admit(backends, index, tried, now, out var ramping);
                if (admission != Admission.Refused && !ramping)
                {
                    return new Pick(index, admission, false);
                }
            }

            // All three slots are out: rank every backend for this key so the client still lands on
            // the same substitute every time, not wherever round-robin happens to be.
            var substitute = SelectByRendezvous(route, key, tried, now);
            if (substitute.Found)
            {
                return substitute;
            }
        }

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
        if (deferred >= 0)
        {
            return new Pick(deferred, Admission.Admitted, false);
        }

        if (!allowPanic)
        {
            return Pick.None;
        }
        // Panic: nothing is admissible. Round-robin over the backends not yet tried, ignoring health.
        for (var step = 0; step < sequence.Length; step++)
        {
            var index = sequence[(int)((uint)(start + step) % (uint)sequence.Length)];
            if ((tried & (1UL << index)) == 0)
            {
                return new Pick(index, Admission.Admitted, true);
            }
        }
        return Pick.None;
    }

    /// <summary>
    /// Weighted rendezvous hashing (highest random weight: score = -weight / ln(u), u from the key
    /// and the backend id): deterministic for a key and a set of available backends, spread by weight.
    /// Only reached when a pinned client's own slots are all out.
    /// </summary>
    private static Pick SelectByRendezvous(ModelRoute route, ulong key, ulong tried, long now)
    {
        var backends = route.Backends;
        Span<double> scores = stackalloc double[backends.Length];
        for (var i = 0; i < backends.Length; i++)
        {
            var u = ((StableHash.Hash(backends[i].Id, key) >> 11) + 0.5) / (1UL << 53);
            scores[i] = (tried & (1UL << i)) != 0 ? double.NegativeInfinity : -backends[i].Weight / Math.Log(u);
        }
        for (var round = 0; round < backends.Length; round++)
        {
            var best = -1;
            for (var i = 0; i < backends.Length; i++)
            {
                if (!double.IsNegativeInfinity(scores[i]) && (best < 0 || scores[i] > scores[best]))
                {
                    best = i;
                }
            }
            if (best < 0)
            {
                break;
            }
            scores[best] = double.NegativeInfinity;
            var admission = Admit(backends, best, tried, now, out var ramping);
            if (admission != Admission.Refused && !ramping)
            {
                return new Pick(best, admission, false);
            }
        }
        return Pick.None;
    }

    /// <summary>
    /// Whether backend <paramref name="index"/> may take this attempt: not already tried, admitted by
    /// its health state. <paramref name="ramping"/> is set when it is admitted but in slow start and
    /// lost the draw for this turn (callers skip it or keep it as a last resort).
    /// </summary>
    private static Admission Admit(BackendEntry[] backends, int index, ulong tried, long now, out bool ramping)
    {
        ramping = false;
        if ((tried & (1UL << index)) != 0)
        {
            return Admission.Refused;
        }
        var admission = backends[index].State.TryAdmit(now);
        ramping = admission == Admission.Admitted && !PassesSlowStart(backends[index].State, now);
        return admission;
    }

    private static bool PassesSlowStart(BackendState state, long now)
    {
        var factor = state.SlowStartFactor(now);
        return factor >= 1.0 || Random.Shared.NextDouble() < factor;
    }
}
