using System.Collections.Concurrent;
using System.Diagnostics;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// A backend killed under load costs no client request that it had not answered:
/// connections it refuses are retried on another backend before any byte goes to the client.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class KillUnderLoadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Killing_one_of_three_backends_under_load_fails_no_client_request()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        await using var b3 = await BackendProcess.StartAsync("b3");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1), ("b3", b3.Url, 1)),
            new Dictionary<string, string> { ["HEALTH_CHECK_INTERVAL"] = "0.5", ["LOG_LEVEL"] = "WARNING" });
        using var pool = ClientPool.Create(subnet: 10, count: 20);

        // Which backend each client is pinned to: kill the one with the most clients.
        var homes = new string[pool.Clients.Length];
        for (var i = 0; i < homes.Length; i++)
        {
            homes[i] = await pool.EchoIdAsync(gateway, i);
        }
        var victimId = homes.GroupBy(h => h).OrderByDescending(g => g.Count()).First().Key;
        var victim = new[] { b1, b2, b3 }.Single(b => b.Id == victimId);
        output.WriteLine($"clients per backend: {string.Join(", ", homes.GroupBy(h => h).OrderBy(g => g.Key).Select(g => $"{g.Key}={g.Count()}"))}; killing {victimId}");

        // Load: every client sends requests back to back for 6 s (bounded also by count); the kill comes at 2 s.
        var failures = new ConcurrentQueue<string>();
        var served = new ConcurrentDictionary<string, int>();
        var total = 0;
        var afterKill = 0;
        var killed = 0;
        var watch = Stopwatch.StartNew();
        var loops = Enumerable.Range(0, pool.Clients.Length).Select(i => Task.Run(async () =>
        {
            for (var n = 0; n < 5000 && watch.Elapsed < TimeSpan.FromSeconds(6); n++)
            {
                var (id, failure) = await pool.EchoAsync(gateway, i);
                Interlocked.Increment(ref total);
                if (Volatile.Read(ref killed) == 1)
                {
                    Interlocked.Increment(ref afterKill);
                }
                if (failure is not null)
                {
                    failures.Enqueue($"{watch.Elapsed.TotalMilliseconds:0} ms {failure}");
                }
                else
                {
                    served.AddOrUpdate(id!, 1, (_, c) => c + 1);
                }
            }
        })).ToArray();
        // The kill comes once the load runs on every backend (at least 2 s in, so the load is steady).
        await Poll.UntilAsync(() => watch.Elapsed > TimeSpan.FromSeconds(2) && served.Count == 3, TimeSpan.FromSeconds(5), "load on all three backends");
        victim.Kill();
        Volatile.Write(ref killed, 1);
        output.WriteLine($"killed {victimId} at {watch.Elapsed.TotalMilliseconds:0} ms");
        await Task.WhenAll(loops);

        output.WriteLine($"{total} requests ({afterKill} after the kill), served: {string.Join(", ", served.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}"))}; failures: {failures.Count}");
        foreach (var failure in failures.Take(20))
        {
            output.WriteLine(failure);
        }
        if (!failures.IsEmpty)
        {
            output.WriteLine("gateway log:\n" + gateway.Output.Text);
        }
        Assert.Empty(failures);
        Assert.True(afterKill > 100, $"only {afterKill} requests after the kill: not much of a load");
        var refused = gateway.Output.Lines.Count(l => l.Contains($"backend {victimId} failed before the request was delivered", StringComparison.Ordinal));
        var dropped = gateway.Output.Lines.Count(l => l.Contains($"backend {victimId} dropped the connection before answering", StringComparison.Ordinal));
        output.WriteLine($"retried on another backend: {refused} refused connects, {dropped} requests in flight at the kill");
        // The survivors took the victim's clients.
        foreach (var i in Enumerable.Range(0, homes.Length).Where(i => homes[i] == victimId))
        {
            Assert.NotEqual(victimId, await pool.EchoIdAsync(gateway, i));
        }
    }
}
