using System.Diagnostics;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>An unhealthy backend receives no traffic within one interval plus threshold, and gets it back when healthy.</summary>
public sealed class ActiveHealthTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_unhealthy_backend_gets_no_traffic_within_interval_times_threshold_and_traffic_again_when_healthy()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        await using var b3 = await BackendProcess.StartAsync("b3");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1), ("b3", b3.Url, 1)),
            new Dictionary<string, string>
            {
                ["HEALTH_CHECK_INTERVAL"] = "0.5",
                ["HEALTH_CHECK_UNHEALTHY_THRESHOLD"] = "2",
                ["SLOW_START_SECONDS"] = "0", // full share at once on recovery (slow start has its own unit tests)
            });
        // 20 client addresses: with client-ip affinity about a third of them are pinned to b2.
        using var pool = ClientPool.Create(subnet: 11, count: 20);
        await gateway.Output.WaitForLineAsync(l => l.Contains("svc/m/b2: unknown -> healthy", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.True(await CountOnAsync(b2, pool, gateway, 60) > 0, "b2 took no traffic while healthy");

        // 1. b2 starts failing its checks. Two failed checks 0.5 s (±10% jitter) apart take ~1.1 s
        //    after the switch; the deadline leaves room for a loaded box. Then it must receive nothing.
        await b2.SetHealthAsync(503);
        await gateway.Output.WaitForLineAsync(l => l.Contains("backend svc/m/b2 is unhealthy", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.Equal(0, await CountOnAsync(b2, pool, gateway, 200));

        // 2. Healthy again: one passed check (healthy threshold 1) brings the traffic back.
        await b2.SetHealthAsync(200);
        await gateway.Output.WaitForLineAsync(l => l.Contains("svc/m/b2: unhealthy -> healthy", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        var back = await CountOnAsync(b2, pool, gateway, 200);
        output.WriteLine($"b2 received {back} of 200 requests after recovering");
        Assert.True(back > 0, "b2 got no traffic after it recovered");
    }

    /// <summary>Zeroes <paramref name="backend"/>'s counters, sends <paramref name="requests"/> requests spread over the pool's addresses (all must succeed) and returns how many reached it.</summary>
    private static async Task<long> CountOnAsync(BackendProcess backend, ClientPool pool, GatewayProcess gateway, int requests)
    {
        await backend.ResetStatsAsync();
        for (var n = 0; n < requests; n++)
        {
            await pool.EchoIdAsync(gateway, n % pool.Clients.Length);
        }
        return (await backend.StatsAsync()).PathCount("/echo");
    }
}
