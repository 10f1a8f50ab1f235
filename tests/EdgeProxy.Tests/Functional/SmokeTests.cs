using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional;

/// <summary>The gateway process starts, proxies to a real backend process and reports health.</summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class SmokeTests
{
    [Fact]
    public async Task Proxies_to_a_real_backend_and_reports_it_healthy()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k", ["HEALTH_CHECK_INTERVAL"] = "0.5" });

        var request = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + "/svc/m/echo/x?y=1");
        request.Headers.Add("X-API-Key", "k");
        using var response = await gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"id\":\"b1\"", await response.Content.ReadAsStringAsync());
        Assert.True(response.Headers.Contains("X-Request-ID"));

        await gateway.Output.WaitForLineAsync(l => l.Contains("svc/m/b1: unknown -> healthy"), TimeSpan.FromSeconds(10));
        var status = await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status");
        Assert.Contains("\"status\":\"healthy\"", status);
    }
}
