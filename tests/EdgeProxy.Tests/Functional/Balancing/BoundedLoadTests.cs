using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Affinity with bounded loads end to end, on every path and transport, with a backends.json that
/// has no balance fields (the defaults): each client's conversation stays on one backend while the
/// load is even, and one client address sending many slow requests at once is spread over the
/// backends instead of piling onto its home; when those finish the client is home again.
/// </summary>
[Trait(Matrix.Trait, Matrix.Variants)]
public sealed class BoundedLoadTests(ITestOutputHelper output)
{
    private const int Clients = 6;
    private const int Turns = 10;
    private const int Concurrent = 12;

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task One_client_sticks_while_balanced_and_spreads_when_it_floods_its_backend(string variant)
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        await using var b3 = await BackendProcess.StartAsync("b3");
        var config = BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1), ("b3", b3.Url, 1));
        var environment = GatewayVariant.Parse(variant).Apply(new Dictionary<string, string> { ["LOG_LEVEL"] = "WARNING" });
        await using var gateway = await GatewayProcess.StartAsync(config, environment);
        using var pool = ClientPool.Create(subnet: 15, count: Clients);

        // 1. Balanced: every turn of each client's conversation goes to that client's one backend.
        var homes = new string[Clients];
        for (var i = 0; i < Clients; i++)
        {
            var seen = new HashSet<string>();
            for (var turn = 0; turn < Turns; turn++)
            {
                seen.Add(await pool.EchoIdAsync(gateway, i));
            }
            Assert.True(seen.Count == 1, $"{variant}: {pool.Addresses[i]} was served by {string.Join(", ", seen)}");
            homes[i] = seen.Single();
        }

        // 2. One address, many slow requests at once (each holds its backend 3 s before answering):
        //    beyond 1.25 x the average in flight, its requests go on to its next backends.
        var client = pool.Clients[0];
        var requests = Enumerable.Range(0, Concurrent).Select(async _ =>
        {
            using var response = await client.GetAsync($"{gateway.BaseUrl}/svc/m/slow?headersMs=3000&bodyMs=0");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"{variant}: {(int)response.StatusCode} {body}");
            return response.Headers.GetValues("X-Backend-Id").Single();
        }).ToArray();
        var servedBy = await Task.WhenAll(requests);
        var counts = servedBy.GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"{variant}: home {homes[0]}; {Concurrent} concurrent requests served by "
            + string.Join(", ", counts.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}")));
        Assert.True(counts.Count >= 2, $"{variant}: all {Concurrent} concurrent requests of one client went to {homes[0]}");
        Assert.True(counts.GetValueOrDefault(homes[0]) < Concurrent);
        Assert.All(counts.Values, n => Assert.True(n <= Concurrent / 2 + 1, $"{variant}: one backend took {n} of {Concurrent}"));

        // 3. The slow requests are done (the gateway ends its count just after the last byte, so
        //    wait for that): the client is home again, and so is everyone else.
        await Poll.UntilAsync(async () => await pool.EchoIdAsync(gateway, 0) == homes[0], TimeSpan.FromSeconds(10),
            $"{pool.Addresses[0]} to return to {homes[0]}");
        for (var i = 0; i < Clients; i++)
        {
            Assert.Equal(homes[i], await pool.EchoIdAsync(gateway, i));
        }
    }
}
