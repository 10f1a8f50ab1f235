using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Connection failures on live traffic eject a backend (visible in
/// /api/health/status and the log); after the back-off a half-open trial re-admits it once it is back.
/// Active checks are slowed to one a minute so only passive health acts here.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class PassiveHealthTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Connection_failures_eject_a_backend_and_a_half_open_trial_readmits_it()
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        var b2 = await BackendProcess.StartAsync("b2");
        BackendProcess? b2Again = null;
        try
        {
            await using var gateway = await GatewayProcess.StartAsync(
                BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1)),
                new Dictionary<string, string>
                {
                    ["HEALTH_CHECK_INTERVAL"] = "60",
                    ["EJECTION_BASE_SECONDS"] = "1",
                    ["SLOW_START_SECONDS"] = "0",
                });
            using var pool = ClientPool.Create(subnet: 14, count: 16);
            await gateway.Output.WaitForLineAsync(l => l.Contains("svc/m/b2: unknown -> healthy", StringComparison.Ordinal), TimeSpan.FromSeconds(10));

            // 1. b2 dies. Requests meant for it fail over (no client failure) and eject it.
            b2.Kill();
            for (var i = 0; i < pool.Clients.Length; i++)
            {
                Assert.Equal("b1", await pool.EchoIdAsync(gateway, i));
            }
            var ejectedLine = await gateway.Output.WaitForLineAsync(l => l.Contains("backend svc/m/b2 ejected for", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
            output.WriteLine(ejectedLine);
            Assert.Contains("connection failure", ejectedLine);
            Assert.True(await IsEjectedAsync(gateway, "b2"), "b2 not shown as ejected in /api/health/status");

            // 2. b2 is back on its port. After the back-off, one trial request re-admits it.
            b2Again = await BackendProcess.StartAsync("b2", b2.Port);
            await Poll.UntilAsync(async () =>
            {
                for (var i = 0; i < pool.Clients.Length; i++)
                {
                    await pool.EchoIdAsync(gateway, i); // every request still succeeds meanwhile
                }
                return gateway.Output.Lines.Any(l => l.Contains("backend svc/m/b2 re-admitted after a successful half-open trial", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(20), "b2 to be re-admitted by a half-open trial", TimeSpan.FromMilliseconds(200));
            Assert.False(await IsEjectedAsync(gateway, "b2"), "b2 still shown as ejected after re-admission");

            // 3. It takes traffic again.
            await b2Again.ResetStatsAsync();
            for (var i = 0; i < pool.Clients.Length; i++)
            {
                await pool.EchoIdAsync(gateway, i);
            }
            Assert.True((await b2Again.StatsAsync()).PathCount("/echo") > 0, "re-admitted b2 got no traffic");
        }
        finally
        {
            await b2.DisposeAsync();
            if (b2Again is not null)
            {
                await b2Again.DisposeAsync();
            }
        }
    }

    private static async Task<bool> IsEjectedAsync(GatewayProcess gateway, string id)
    {
        using var status = JsonDocument.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"));
        var backend = status.RootElement.GetProperty("data").GetProperty("svc").GetProperty("m").EnumerateArray().Single(b => b.GetProperty("id").GetString() == id);
        return backend.GetProperty("ejected").GetBoolean();
    }
}
