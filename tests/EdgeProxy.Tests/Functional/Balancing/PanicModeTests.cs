using System.Net;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>Every backend unhealthy -> still tried (panic, logged), or 503 JSON with ON_ALL_UNHEALTHY=fail.</summary>
public sealed class PanicModeTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("try")]
    [InlineData("fail")]
    public async Task When_every_backend_is_unhealthy(string? onAllUnhealthy)
    {
        await using var b1 = await BackendProcess.StartAsync("b1");
        await using var b2 = await BackendProcess.StartAsync("b2");
        // Both fail their health checks from the start but still answer real requests.
        await b1.SetHealthAsync(503);
        await b2.SetHealthAsync(503);
        var env = new Dictionary<string, string> { ["HEALTH_CHECK_INTERVAL"] = "0.5" };
        if (onAllUnhealthy is not null)
        {
            env["ON_ALL_UNHEALTHY"] = onAllUnhealthy;
        }
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", b1.Url, 1), ("b2", b2.Url, 1)), env);
        foreach (var id in new[] { "b1", "b2" })
        {
            await gateway.Output.WaitForLineAsync(l => l.Contains($"backend svc/m/{id} is unhealthy", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        }

        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo");
        var body = await response.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(body);
        if (onAllUnhealthy == "fail")
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("no_healthy_backend", json.RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal(0, (await b1.StatsAsync()).PathCount("/echo") + (await b2.StatsAsync()).PathCount("/echo"));
            await gateway.Output.WaitForLineAsync(l => l.Contains("no healthy backend", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        }
        else
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(json.RootElement.GetProperty("id").GetString(), new[] { "b1", "b2" });
            await gateway.Output.WaitForLineAsync(l => l.Contains("panic mode", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        }
    }
}
