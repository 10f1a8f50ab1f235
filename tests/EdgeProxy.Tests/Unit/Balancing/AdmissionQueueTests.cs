using EdgeProxy.Balancing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Balancing;

public sealed class AdmissionQueueTests
{
    private static readonly Func<bool> Busy = () => false;

    private readonly FakeTimeProvider _time = new();

    [Fact]
    public async Task Freed_slots_go_to_waiters_first_in_first_out()
    {
        var queue = new AdmissionQueue(capacity: 10, TimeSpan.FromSeconds(5), _time);
        var waits = Enumerable.Range(0, 5).Select(_ => queue.WaitAsync(null, Busy, default).AsTask()).ToArray();
        Assert.Equal(5, queue.Depth);
        for (var i = 0; i < 5; i++)
        {
            queue.Signal();
            Assert.Equal(QueueOutcome.Turn, (await waits[i].WaitAsync(TimeSpan.FromSeconds(10))).Outcome);
            Assert.All(waits[(i + 1)..], w => Assert.False(w.IsCompleted));
        }
        Assert.Equal(0, queue.Depth);
    }

    [Fact]
    public async Task A_full_line_refuses_at_once_and_a_wait_ends_at_the_timeout()
    {
        var queue = new AdmissionQueue(capacity: 2, TimeSpan.FromSeconds(5), _time);
        var first = queue.WaitAsync(null, Busy, default).AsTask();
        var second = queue.WaitAsync(null, Busy, default).AsTask();
        Assert.Equal(QueueOutcome.Full, (await queue.WaitAsync(null, Busy, default)).Outcome);

        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.False(first.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(0.2));
        Assert.Equal(QueueOutcome.TimedOut, (await first).Outcome);
        Assert.Equal(QueueOutcome.TimedOut, (await second).Outcome);
        Assert.Equal(0, queue.Depth);
        Assert.Equal(3, queue.Rejected);
        Assert.Equal(10.2, queue.WaitSeconds, 3);
    }

    [Fact]
    public async Task A_waiter_that_loses_its_slot_waits_again_at_the_front_with_the_time_it_has_left()
    {
        var queue = new AdmissionQueue(capacity: 10, TimeSpan.FromSeconds(5), _time);
        var first = queue.WaitAsync(null, Busy, default).AsTask();
        _time.Advance(TimeSpan.FromSeconds(1));
        var second = queue.WaitAsync(null, Busy, default).AsTask();
        queue.Signal();
        var (outcome, waiter) = await first;
        Assert.Equal(QueueOutcome.Turn, outcome);

        // The slot went to someone else: back in line, ahead of the second waiter.
        _time.Advance(TimeSpan.FromSeconds(2));
        var again = queue.WaitAsync(waiter, Busy, default).AsTask();
        queue.Signal();
        Assert.Equal(QueueOutcome.Turn, (await again).Outcome);
        Assert.False(second.IsCompleted);

        var third = queue.WaitAsync(waiter, Busy, default).AsTask();
        _time.Advance(TimeSpan.FromSeconds(2.1));   // 5.1 s since the first wait began, 4.1 s since the second's
        Assert.Equal(QueueOutcome.TimedOut, (await third).Outcome);
        Assert.False(second.IsCompleted);
        queue.Signal();
        Assert.Equal(QueueOutcome.Turn, (await second).Outcome);
    }

    [Fact]
    public async Task A_slot_freed_while_joining_is_not_missed()
    {
        var queue = new AdmissionQueue(capacity: 10, TimeSpan.FromSeconds(5), _time);
        // The caller's pick failed, then the slot was freed (signalling an empty line), then it joined.
        var (outcome, _) = await queue.WaitAsync(null, () => true, default);
        Assert.Equal(QueueOutcome.Turn, outcome);
        Assert.Equal(0, queue.Depth);
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_and_a_turn_it_was_given_passes_on()
    {
        var queue = new AdmissionQueue(capacity: 10, TimeSpan.FromSeconds(5), _time);
        using var gone = new CancellationTokenSource();
        var leaving = queue.WaitAsync(null, Busy, gone.Token).AsTask();
        var next = queue.WaitAsync(null, Busy, default).AsTask();
        gone.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
        Assert.Equal(1, queue.Depth);
        queue.Signal();
        Assert.Equal(QueueOutcome.Turn, (await next).Outcome);
    }

    [Fact]
    public async Task Concurrent_signals_and_waits_lose_no_turn()
    {
        // 4 slots shared by 200 requests: each waits when none is free, holds one briefly, frees it.
        var queue = new AdmissionQueue(capacity: 1000, TimeSpan.FromSeconds(30), TimeProvider.System);
        var free = 4;
        bool TryTake()
        {
            var seen = Volatile.Read(ref free);
            while (seen > 0)
            {
                var was = Interlocked.CompareExchange(ref free, seen - 1, seen);
                if (was == seen)
                {
                    return true;
                }
                seen = was;
            }
            return false;
        }
        var served = 0;
        var requests = Enumerable.Range(0, 200).Select(_ => Task.Run(async () =>
        {
            AdmissionQueue.Waiter? waiter = null;
            while (!TryTake())
            {
                QueueOutcome outcome;
                (outcome, waiter) = await queue.WaitAsync(waiter, () => Volatile.Read(ref free) > 0, default);
                Assert.Equal(QueueOutcome.Turn, outcome);
            }
            await Task.Yield();
            Interlocked.Increment(ref served);
            Interlocked.Increment(ref free);
            queue.Signal();
        })).ToArray();
        await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(200, served);
        Assert.Equal(4, free);
        Assert.Equal(0, queue.Depth);
    }
}
