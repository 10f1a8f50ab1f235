using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Client-IP affinity end to end — sticky, spread over every backend, a pinned
/// client whose backend dies is served elsewhere at once and comes home when it recovers, and two
/// gateway instances with the same config agree on every client without shared state.
/// </summary>
public sealed class AffinityTests(ITestOutputHelper output)
{
    private const int Clients = 30;
    private const int RequestsPerClient = 10;

    private static readonly Dictionary<string, string> Environment = new()
    {
        ["HEALTH_CHECK_INTERVAL"] = "0.5",
        ["EJECTION_BASE_SECONDS"] = "1", // passive ejection of the killed backend lifts quickly
        ["SLOW_START_SECONDS"] = "0",    // the recovered backend takes its clients back at once
        ["LOG_LEVEL"] = "WARNING",
    };

    [Fact]
    public async Task Each_client_sticks_to_one_backend_fails_over_at_once_and_returns_home_after_recovery()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        var b3 = await BackendProcess.StartAsync("b3");
        BackendProcess? b3Again = null;
        try
        {
            var config = BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1), ("b3", b3.Url, 1));
            await using var gateway = await GatewayProcess.StartAsync(config, Environment);
            using var pool = ClientPool.Create(subnet: 12, count: Clients);

            // 1. Sticky: every request of a client lands on one backend; clients spread over all three.
            var homes = new string[Clients];
            for (var i = 0; i < Clients; i++)
            {
                var seen = new HashSet<string>();
                for (var r = 0; r < RequestsPerClient; r++)
                {
                    seen.Add(await pool.EchoIdAsync(gateway, i));
                }
                Assert.True(seen.Count == 1, $"{pool.Addresses[i]} was served by {string.Join(", ", seen)}");
                homes[i] = seen.Single();
            }
            var spread = homes.GroupBy(h => h).ToDictionary(g => g.Key, g => g.Count());
            output.WriteLine("clients per backend: " + string.Join(", ", spread.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}")));
            Assert.Equal(["b1", "b2", "b3"], spread.Keys.Order());

            // 2. Two gateways, same config, no shared state: same mapping for every address.
            await using (var twin = await GatewayProcess.StartAsync(config, Environment))
            {
                for (var i = 0; i < Clients; i++)
                {
                    Assert.Equal(homes[i], await pool.EchoIdAsync(twin, i));
                }
            }

            // 3. Kill b3: its clients are served by another backend from the very next request, and
            //    each keeps to one substitute; nobody else moves.
            b3.Kill();
            var substitutes = new Dictionary<int, string>();
            for (var i = 0; i < Clients; i++)
            {
                var now = await pool.EchoIdAsync(gateway, i);
                if (homes[i] == "b3")
                {
                    Assert.NotEqual("b3", now);
                    substitutes[i] = now;
                }
                else
                {
                    Assert.Equal(homes[i], now);
                }
            }
            foreach (var (i, substitute) in substitutes)
            {
                Assert.Equal(substitute, await pool.EchoIdAsync(gateway, i));
            }

            // 4. b3 comes back on the same port. Once a health check sees it healthy (and its passive
            //    ejection has lifted) its clients return to it.
            b3Again = await BackendProcess.StartAsync("b3", b3.Port);
            var pinned = substitutes.Keys.First();
            await Poll.UntilAsync(async () => await pool.EchoIdAsync(gateway, pinned) == "b3", TimeSpan.FromSeconds(15),
                $"{pool.Addresses[pinned]} to return to the restarted b3");
            for (var i = 0; i < Clients; i++)
            {
                for (var r = 0; r < 3; r++)
                {
                    Assert.Equal(homes[i], await pool.EchoIdAsync(gateway, i));
                }
            }
        }
        finally
        {
            await b3.DisposeAsync();
            if (b3Again is not null)
            {
                await b3Again.DisposeAsync();
            }
        }
    }
}
