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
/// Chooses a backend for one attempt. Order: (1) the client's affinity slot and two deterministic
/// fall-back slots, so a pinned client whose backend is down lands on the same substitute every time
/// and returns home when it recovers; (2) smooth weighted round-robin; (3) panic mode — every
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
                if ((tried & (1UL << index)) != 0)
                {
                    continue;
                }
                var admission = backends[index].State.TryAdmit(now);
                if (admission == Admission.Refused)
                {
                    continue;
                }
                if (admission == Admission.Admitted && !PassesSlowStart(backends[index].State, now))
                {
                    continue;
                }
                return new Pick(index, admission, false);
            }
        }

        var sequence = route.Sequence;
        var start = route.NextCursor();
        var deferred = -1;
        for (var step = 0; step < sequence.Length; step++)
        {
            var index = sequence[(int)((uint)(start + step) % (uint)sequence.Length)];
            if ((tried & (1UL << index)) != 0)
            {
                continue;
            }
            var admission = backends[index].State.TryAdmit(now);
            if (admission == Admission.Refused)
            {
                continue;
            }
            if (admission == Admission.Admitted && !PassesSlowStart(backends[index].State, now))
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

    private static bool PassesSlowStart(BackendState state, long now)
    {
        var factor = state.SlowStartFactor(now);
        return factor >= 1.0 || Random.Shared.NextDouble() < factor;
    }
}
