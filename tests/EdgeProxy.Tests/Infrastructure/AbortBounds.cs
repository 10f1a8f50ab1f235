namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// How soon a client going away must reach the backend as an aborted request. The first abort in a
/// fresh gateway runs the cancellation path for the first time (the JIT build compiles it, the AOT
/// binary faults its pages in; 100-175 ms seen at load average 50 on the 2-core box), so it gets a
/// looser bound that still catches a drain-on-dispose regression (seconds); every later one must be
/// under <see cref="WarmMs"/>.
/// </summary>
internal static class AbortBounds
{
    public const double WarmMs = 100;

    public const double ColdMs = 500;

    /// <summary>Milliseconds from <paramref name="closedAt"/> (Stopwatch ticks) to the backend's record of the abort of <paramref name="tag"/>.</summary>
    public static async Task<double> DelayAsync(BackendProcess backend, string tag, long closedAt)
    {
        long? abortTicks = null;
        await Poll.UntilAsync(async () => (abortTicks = (await backend.StatsAsync()).LastAbortTicks(tag)) is not null,
            TimeSpan.FromSeconds(10), $"the backend to record the abort of {tag}", TimeSpan.FromMilliseconds(20));
        return (abortTicks!.Value - closedAt) * 1000.0 / System.Diagnostics.Stopwatch.Frequency;
    }

    /// <summary>Asserts <paramref name="delaysMs"/> (client close → backend abort, in order) against the bounds.</summary>
    public static void Check(IReadOnlyList<double> delaysMs, string what)
    {
        var all = string.Join(", ", delaysMs.Select(d => d.ToString("0.0")));
        Assert.True(delaysMs[0] < ColdMs, $"first upstream abort took {delaysMs[0]:0.0} ms after {what} (bound {ColdMs} ms); all: {all}");
        foreach (var delay in delaysMs.Skip(1))
        {
            Assert.True(delay < WarmMs, $"upstream abort took {delay:0.0} ms after {what} (bound {WarmMs} ms); all: {all}");
        }
    }
}
