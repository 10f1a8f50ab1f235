namespace EdgeProxy.Balancing;

/// <summary>
/// A model's wait line for requests that find every eligible backend full (at its
/// <c>max_concurrency</c> or its connection budget): bounded (<c>max_queue</c>), first in first out,
/// and each wait bounded by <c>queue_timeout</c>, after which the request is answered 429 with
/// Retry-After instead of timing out against a backend that was only busy. A freed slot wakes the
/// oldest waiter, which picks again; one that loses the slot to a racing request waits again at the
/// front. While nobody waits, the request path pays one volatile read (<see cref="Depth"/>); the lock
/// is taken only when the model is saturated. Queue time is never a backend's time: callers start
/// their exchange timers after the wait.
/// </summary>
internal sealed class AdmissionQueue(int capacity, TimeSpan timeout, TimeProvider time)
{
    private int _capacity = capacity;
    private long _timeoutTicks = timeout.Ticks;
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private int _depth;
    private long _admitted;
    private long _rejected;
    private long _waitTicks;

    /// <summary>max_queue: requests that may wait at once.</summary>
    public int Capacity => Volatile.Read(ref _capacity);

    /// <summary>queue_timeout: the longest wait.</summary>
    public TimeSpan Timeout => TimeSpan.FromTicks(Interlocked.Read(ref _timeoutTicks));

    /// <summary>A reload changed the model's limits: they apply to the waits that begin from now on (the line itself survives).</summary>
    public void Configure(int maxQueue, TimeSpan queueTimeout)
    {
        Volatile.Write(ref _capacity, maxQueue);
        Interlocked.Exchange(ref _timeoutTicks, queueTimeout.Ticks);
    }

    /// <summary>Requests waiting now.</summary>
    public int Depth => Volatile.Read(ref _depth);

    /// <summary>Waits that ended with a turn to pick (for the metrics).</summary>
    public long Admitted => Interlocked.Read(ref _admitted);

    /// <summary>Requests refused because the line was full or their wait ran out.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Total time spent waiting, over all waits, in seconds.</summary>
    public double WaitSeconds => Interlocked.Read(ref _waitTicks) / (double)TimeSpan.TicksPerSecond;

    /// <summary>The line's figures for the status page and the dashboard.</summary>
    public Health.QueueStatus Status()
    {
        var ended = Admitted + Rejected;
        return new Health.QueueStatus
        {
            Waiting = Depth,
            MaxQueue = Capacity,
            QueueTimeoutS = Timeout.TotalSeconds,
            Admitted = Admitted,
            Rejected = Rejected,
            AvgWaitMs = ended == 0 ? null : Math.Round(WaitSeconds * 1000 / ended, 2),
            WaitSeconds = WaitSeconds,
        };
    }

    /// <summary>A request's place in the line, kept across the picks it loses so it stays at the front.</summary>
    public sealed class Waiter
    {
        internal Waiter(long startedAt) => StartedAt = startedAt;

        internal long StartedAt { get; }

        internal LinkedListNode<Waiter>? Node;

        internal TaskCompletionSource? Turn;
    }

    /// <summary>
    /// Waits for a freed slot. <paramref name="waiter"/> is null on the first wait and the returned
    /// waiter on later ones (it then goes back to the front). <paramref name="slotFree"/> is asked once
    /// more after joining the line: a slot freed between the caller's failed pick and the join signalled
    /// an empty line, and would otherwise be missed until the next one; it then goes to the oldest
    /// waiter. Cancellation (the client left) throws.
    /// </summary>
    public async ValueTask<(QueueOutcome Outcome, Waiter Waiter)> WaitAsync(Waiter? waiter, Func<bool> slotFree, CancellationToken cancellationToken)
    {
        var again = waiter is not null;
        waiter ??= new Waiter(time.GetTimestamp());
        var remaining = Timeout - time.GetElapsedTime(waiter.StartedAt);
        var turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (!again && _waiters.Count >= Capacity)
            {
                Interlocked.Increment(ref _rejected);
                return (QueueOutcome.Full, waiter);
            }
            if (remaining <= TimeSpan.Zero)
            {
                return (Reject(waiter), waiter);
            }
            waiter.Turn = turn;
            waiter.Node = again ? _waiters.AddFirst(waiter) : _waiters.AddLast(waiter);
            // A full fence: either the releasing request sees this depth, or this check sees its slot.
            Interlocked.Exchange(ref _depth, _waiters.Count);
        }
        if (slotFree())
        {
            Signal();   // the slot goes to the oldest waiter, which may be this one
        }
        try
        {
            await turn.Task.WaitAsync(remaining, time, cancellationToken).ConfigureAwait(false);
            return (QueueOutcome.Turn, waiter);
        }
        catch (TimeoutException)
        {
            return Leave(waiter) ? (Reject(waiter), waiter) : (QueueOutcome.Turn, waiter);
        }
        catch (OperationCanceledException)
        {
            if (!Leave(waiter))
            {
                Signal();   // the turn it was given goes to the next in line
            }
            throw;
        }
    }

    /// <summary>The waiter got its slot: its wait counts as done.</summary>
    public void Admit(Waiter waiter)
    {
        Interlocked.Increment(ref _admitted);
        Interlocked.Add(ref _waitTicks, time.GetElapsedTime(waiter.StartedAt).Ticks);
    }

    /// <summary>A slot was freed on one of the model's backends: the oldest waiter may pick. Cheap when nobody waits.</summary>
    public void Signal()
    {
        if (Volatile.Read(ref _depth) == 0)
        {
            return;
        }
        TaskCompletionSource? turn = null;
        lock (_lock)
        {
            if (_waiters.First is { } first)
            {
                _waiters.RemoveFirst();
                first.Value.Node = null;
                turn = first.Value.Turn;
                _depth = _waiters.Count;
            }
        }
        turn?.TrySetResult();
    }

    /// <summary>Takes the waiter out of the line; false when a <see cref="Signal"/> already did (its turn came).</summary>
    private bool Leave(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node is not { } node)
            {
                return false;
            }
            _waiters.Remove(node);
            waiter.Node = null;
            _depth = _waiters.Count;
            return true;
        }
    }

    private QueueOutcome Reject(Waiter waiter)
    {
        Interlocked.Increment(ref _rejected);
        Interlocked.Add(ref _waitTicks, time.GetElapsedTime(waiter.StartedAt).Ticks);
        return QueueOutcome.TimedOut;
    }
}

/// <summary>How a wait in an <see cref="AdmissionQueue"/> ended.</summary>
internal enum QueueOutcome
{
    /// <summary>A slot was freed: pick again.</summary>
    Turn,

    /// <summary>The line was at max_queue: refused at once (429).</summary>
    Full,

    /// <summary>queue_timeout passed (429).</summary>
    TimedOut,
}
