using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// `backends.json` is watched; a valid change applies atomically without dropping the
/// streams in flight, an invalid one is logged and the last good config keeps serving; SIGHUP reloads too.
/// </summary>
public sealed class HotReloadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_config_change_mid_stream_applies_without_breaking_the_stream_and_a_bad_change_is_refused()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", b1.Url, 1)),
            new Dictionary<string, string> { ["HEALTH_CHECK_INTERVAL"] = "0.5" });
        using var pool = ClientPool.Create(subnet: 13, count: 12);

        // 1. A 4 s stream (40 events, 100 ms apart) through b1.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/sse?events=40&delayMs=100", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        Assert.Contains("\"i\":0,", (await reader.ReadAsync(deadline.Token))?.Data);

        // 2. Mid-stream: add b2 with weight 3, change b1's weight.
        await gateway.RewriteConfigAsync(BackendsJson.For("svc", "m", ("b1", b1.Url, 2), ("b2", b2.Url, 3)));
        await gateway.Output.WaitForLineAsync(l => l.Contains("Configuration reloaded", StringComparison.Ordinal) && l.Contains("2 backends", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        var served = new HashSet<string>();
        for (var i = 0; i < pool.Clients.Length; i++)
        {
            served.Add(await pool.EchoIdAsync(gateway, i));
        }
        output.WriteLine("after the reload, clients were served by " + string.Join(", ", served.Order()));
        Assert.Contains("b2", served);
        using (var status = JsonDocument.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status")))
        {
            var backends = status.RootElement.GetProperty("data").GetProperty("svc").GetProperty("m").EnumerateArray().ToDictionary(b => b.GetProperty("id").GetString()!, b => b.GetProperty("weight").GetInt32());
            Assert.Equal(new Dictionary<string, int> { ["b1"] = 2, ["b2"] = 3 }, backends);
        }

        // 3. An invalid change (negative weight) is refused with the error named; the last good config keeps serving.
        var bad = JsonNode.Parse(BackendsJson.For("svc", "m", ("b1", b1.Url, 2), ("b2", b2.Url, 3)))!;
        bad["services"]!["svc"]!["models"]!["m"]!["backends"]![1]!["weight"] = -5;
        await gateway.RewriteConfigAsync(bad.ToJsonString());
        await gateway.Output.WaitForLineAsync(l => l.Contains("Configuration reload rejected", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        await gateway.Output.WaitForLineAsync(l => l.Contains("backends[1].weight", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        served.Clear();
        for (var i = 0; i < pool.Clients.Length; i++)
        {
            served.Add(await pool.EchoIdAsync(gateway, i));
        }
        Assert.Contains("b2", served);

        // 4. The stream started before both changes ends intact.
        for (var k = 1; k < 40; k++)
        {
            var e = await reader.ReadAsync(deadline.Token);
            Assert.Contains($"\"i\":{k},", e?.Data);
            Assert.Contains("\"id\":\"b1\"", e?.Data);
        }
        Assert.Equal("[DONE]", (await reader.ReadAsync(deadline.Token))?.Data);
        Assert.Null(await reader.ReadAsync(deadline.Token));
    }

    [Fact]
    public async Task Sighup_reloads_the_config()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        // File watching off: only the signal can make the gateway read the file again.
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", b1.Url, 1)),
            new Dictionary<string, string> { ["WATCH_CONFIG"] = "false" });

        await gateway.RewriteConfigAsync(BackendsJson.For("svc", "m", ("b2", b2.Url, 1)));
        await Task.Delay(500); // more than the watcher's debounce, had it been on
        using (var before = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo"))
        {
            Assert.Contains("\"id\":\"b1\"", await before.Content.ReadAsStringAsync());
        }

        gateway.SendSighup();
        await gateway.Output.WaitForLineAsync(l => l.Contains("SIGHUP received", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        await gateway.Output.WaitForLineAsync(l => l.Contains("Configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        using var after = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo");
        Assert.Contains("\"id\":\"b2\"", await after.Content.ReadAsStringAsync());
    }
}
