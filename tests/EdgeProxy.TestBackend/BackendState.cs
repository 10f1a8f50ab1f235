using System.Collections.Concurrent;
using System.Diagnostics;

namespace EdgeProxy.TestBackend;

/// <summary>
/// Everything the tests can observe or steer at runtime. Kestrel serves requests on many threads,
/// so every field is Interlocked / Volatile / concurrent.
/// </summary>
internal sealed class BackendState(string id)
{
    public string Id { get; } = id;

    private long _requests;
    private long _healthChecks;
    private long _inFlight;
    private readonly ConcurrentDictionary<string, long> _aborted = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _lastAbortTicks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _byPath = new(StringComparer.Ordinal);

    // Health behaviour, switched by POST /control/health. Not touched by /control/reset, so a test
    // can make the backend unhealthy and then zero the counters to count probes from that moment.
    private int _healthStatus = StatusCodes.Status200OK;
    private int _healthDelayMs;

    public int HealthStatus
    {
        get => Volatile.Read(ref _healthStatus);
        set => Volatile.Write(ref _healthStatus, value);
    }

    public int HealthDelayMs
    {
        get => Volatile.Read(ref _healthDelayMs);
        set => Volatile.Write(ref _healthDelayMs, value);
    }

    public ConcurrentDictionary<string, Gate> Gates { get; } = new(StringComparer.Ordinal);

    public void RequestStarted(string path)
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Increment(ref _inFlight);
        _byPath.AddOrUpdate(path, 1, static (_, n) => n + 1);
    }

    public void RequestEnded() => Interlocked.Decrement(ref _inFlight);

    public void HealthChecked() => Interlocked.Increment(ref _healthChecks);

    public void RecordAbort(string tag)
    {
        // Timestamp first so it is as close as possible to the moment Kestrel signalled the abort.
        long now = Stopwatch.GetTimestamp();
        _lastAbortTicks[tag] = now;
        _aborted.AddOrUpdate(tag, 1, static (_, n) => n + 1);
    }

    public void Reset()
    {
        Interlocked.Exchange(ref _requests, 0);
        Interlocked.Exchange(ref _healthChecks, 0);
        _aborted.Clear();
        _lastAbortTicks.Clear();
        _byPath.Clear();
        // in_flight is a gauge of requests still running, not a counter: zeroing it would make it lie.
    }

    public StatsBody Snapshot() => new(
        Id,
        Interlocked.Read(ref _requests),
        Interlocked.Read(ref _healthChecks),
        Interlocked.Read(ref _inFlight),
        new Dictionary<string, long>(_aborted, StringComparer.Ordinal),
        new Dictionary<string, long>(_lastAbortTicks, StringComparer.Ordinal),
        new Dictionary<string, long>(_byPath, StringComparer.Ordinal),
        Stopwatch.Frequency);
}

/// <summary>
/// A named rendezvous between /sse-gated (waits for "event n was received") and
/// POST /control/ack?gate=NAME&amp;n=k (the test saying so). Acks only move forward.
/// </summary>
internal sealed class Gate
{
    private readonly Lock _lock = new();
    private long _acked = -1;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Acked
    {
        get { lock (_lock) { return _acked; } }
    }

    public void Ack(long n)
    {
        TaskCompletionSource toSignal;
        lock (_lock)
        {
            if (n > _acked)
            {
                _acked = n;
            }

            toSignal = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        toSignal.TrySetResult();
    }

    /// <summary>True once event <paramref name="n"/> is acked; false when <paramref name="timeout"/> passes first.</summary>
    public async Task<bool> WaitForAckAsync(long n, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);

        // Each pass either returns or consumes one Ack() call; the cap only guards against a flood of
        // useless acks for older events keeping us spinning past the deadline.
        for (int pass = 0; pass < 100_000; pass++)
        {
            Task changed;
            lock (_lock)
            {
                if (_acked >= n)
                {
                    return true;
                }

                changed = _changed.Task;
            }

            long now = Stopwatch.GetTimestamp();
            if (now >= deadline)
            {
                return false;
            }

            TimeSpan remaining = Stopwatch.GetElapsedTime(now, deadline);

            try
            {
                await changed.WaitAsync(remaining, cancellationToken);
            }
            catch (TimeoutException)
            {
                return Acked >= n;
            }
        }

        return Acked >= n;
    }
}
