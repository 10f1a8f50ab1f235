using System.Diagnostics;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>Bounded polling: every wait in the functional tests has a deadline and a description.</summary>
internal static class Poll
{
    /// <summary>Evaluates <paramref name="condition"/> every <paramref name="interval"/> (default 50 ms) until true; throws TimeoutException after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, TimeSpan? interval = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (await condition())
            {
                return;
            }
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            }
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(50));
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, TimeSpan? interval = null)
        => UntilAsync(() => Task.FromResult(condition()), timeout, what, interval);
}
