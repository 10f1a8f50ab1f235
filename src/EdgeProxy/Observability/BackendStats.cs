namespace EdgeProxy.Observability;

/// <summary>
/// Per-backend traffic over the last minutes for the dashboard: 60 slots of 5 s, each with request
/// and error counts and a latency histogram, plus a time-to-first-byte histogram. Recording is a few
/// Interlocked increments; a slot is recycled by the first writer that finds it stale.
/// </summary>
internal sealed class BackendStats(TimeProvider time)
{
    public const int SlotSeconds = 5;

    public const int Slots = 60;

    /// <summary>Rates and percentiles are computed over this many recent slots (60 s).</summary>
    public const int WindowSlots = 12;

    private readonly Slot[] _slots = Enumerable.Range(0, Slots).Select(_ => new Slot()).ToArray();

    private long CurrentEpoch => time.GetUtcNow().ToUnixTimeSeconds() / SlotSeconds;

    public void Record(double latencyMs, double? firstByteMs, bool error)
    {
        var slot = SlotFor(CurrentEpoch);
        Interlocked.Increment(ref slot.Requests);
        if (error)
        {
            Interlocked.Increment(ref slot.Errors);
        }
        Interlocked.Increment(ref slot.Latency[LatencyBuckets.IndexOf(latencyMs)]);
        if (firstByteMs is double ttfb)
        {
            Interlocked.Increment(ref slot.FirstByte[LatencyBuckets.IndexOf(ttfb)]);
        }
    }

    /// <summary>Marks the current slot with an active check result (history shows unhealthy periods).</summary>
    public void RecordCheck(bool passed)
    {
        var slot = SlotFor(CurrentEpoch);
        Interlocked.Increment(ref passed ? ref slot.ChecksPassed : ref slot.ChecksFailed);
    }

    private Slot SlotFor(long epoch)
    {
        var slot = _slots[(int)(epoch % Slots)];
        var seen = Volatile.Read(ref slot.Epoch);
        if (seen != epoch && Interlocked.CompareExchange(ref slot.Epoch, epoch, seen) == seen)
        {
            // We won the recycle: clear last round's counts. A racing increment may be lost; these
            // are dashboard figures, not billing, and the request path stays lock-free.
            Volatile.Write(ref slot.Requests, 0);
            Volatile.Write(ref slot.Errors, 0);
            Volatile.Write(ref slot.ChecksPassed, 0);
            Volatile.Write(ref slot.ChecksFailed, 0);
            Array.Clear(slot.Latency);
            Array.Clear(slot.FirstByte);
        }
        return slot;
    }

    /// <summary>Summary over the last minute plus one history point per slot (oldest first).</summary>
    public StatsSnapshot Snapshot()
    {
        var current = CurrentEpoch;
        Span<long> latency = stackalloc long[LatencyBuckets.Count];
        Span<long> firstByte = stackalloc long[LatencyBuckets.Count];
        Span<long> slotLatency = stackalloc long[LatencyBuckets.Count];
        long requests = 0, errors = 0;
        var history = new List<HistoryPoint>(Slots);
        for (var back = Slots - 1; back >= 0; back--)
        {
            var epoch = current - back;
            var slot = _slots[(int)(((epoch % Slots) + Slots) % Slots)];
            long slotRequests = 0, slotErrors = 0;
            bool? healthy = null;
            slotLatency.Clear();
            if (Volatile.Read(ref slot.Epoch) == epoch)
            {
                healthy = Volatile.Read(ref slot.ChecksFailed) > 0 ? false : Volatile.Read(ref slot.ChecksPassed) > 0 ? true : null;
                slotRequests = Volatile.Read(ref slot.Requests);
                slotErrors = Volatile.Read(ref slot.Errors);
                for (var i = 0; i < LatencyBuckets.Count; i++)
                {
                    slotLatency[i] = Volatile.Read(ref slot.Latency[i]);
                    if (back < WindowSlots)
                    {
                        latency[i] += slotLatency[i];
                        firstByte[i] += Volatile.Read(ref slot.FirstByte[i]);
                    }
                }
            }
            if (back < WindowSlots)
            {
                requests += slotRequests;
                errors += slotErrors;
            }
            // The current slot is still filling; its rate is over the seconds elapsed so far.
            history.Add(new HistoryPoint(
                epoch * SlotSeconds,
                slotRequests / (double)SlotSeconds,
                slotRequests == 0 ? 0 : slotErrors / (double)slotRequests,
                LatencyBuckets.Quantile(slotLatency, 0.5),
                healthy));
        }
        var seconds = WindowSlots * SlotSeconds;
        return new StatsSnapshot(
            requests / (double)seconds,
            requests == 0 ? 0 : errors / (double)requests,
            LatencyBuckets.Quantile(latency, 0.5),
            LatencyBuckets.Quantile(latency, 0.99),
            LatencyBuckets.Quantile(firstByte, 0.5),
            LatencyBuckets.Quantile(firstByte, 0.99),
            history);
    }

    private sealed class Slot
    {
        public long Epoch = -1;
        public long Requests;
        public long Errors;
        public long ChecksPassed;
        public long ChecksFailed;
        public readonly long[] Latency = new long[LatencyBuckets.Count];
        public readonly long[] FirstByte = new long[LatencyBuckets.Count];
    }
}

internal sealed record StatsSnapshot(
    double Rps,
    double ErrorRate,
    double? LatencyP50Ms,
    double? LatencyP99Ms,
    double? FirstByteP50Ms,
    double? FirstByteP99Ms,
    IReadOnlyList<HistoryPoint> History);

/// <summary>One history sample; <see cref="Healthy"/> is null when no active check ran in its slot.</summary>
internal readonly record struct HistoryPoint(long UnixSeconds, double Rps, double ErrorRate, double? LatencyP50Ms, bool? Healthy);
