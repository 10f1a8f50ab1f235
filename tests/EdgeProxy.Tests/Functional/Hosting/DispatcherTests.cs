using System.Net;
using System.Text.Json;
using EdgeProxy.Tests.Functional.Foundation;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Hosting;

/// <summary>
/// The dispatcher's own answers: percent-encoded service and model names route as their decoded
/// config names; the 404s name what is missing, echoed bounded and printable; /metrics follows
/// METRICS_KEY, the gateway key and METRICS_PORT.
/// </summary>
public sealed class DispatcherTests
{
    [Fact]
    public async Task Encoded_names_route_decoded_and_404s_name_what_is_missing()
    {
        using var closed = new ClosedPort();
        var backend = BackendsJson.Backend("b1", $"http://127.0.0.1:{closed.Port}");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.Models("svc", ("llama3:8b", [backend]), ("m", [backend])));

        // Found (the closed backend then answers 502), encoded or not.
        Assert.Equal(HttpStatusCode.BadGateway, (await SendAsync(gateway, "/svc/llama3%3A8b/v1/x")).Status);
        Assert.Equal(HttpStatusCode.BadGateway, (await SendAsync(gateway, "/svc/llama3:8b/v1/x")).Status);
        Assert.Equal(HttpStatusCode.BadGateway, (await SendAsync(gateway, "/svc/llama3%3a8b/v1/x")).Status);

        await AssertNotFoundAsync(gateway, "/svc/no%3Asuch/x", "model_not_found", "Model 'no:such' is not configured for service 'svc'.");
        await AssertNotFoundAsync(gateway, "/svc/nosuch/x", "model_not_found", "Model 'nosuch' is not configured for service 'svc'.");
        await AssertNotFoundAsync(gateway, "/nosuch/m/x", "service_not_found", "Service 'nosuch' is not configured.");
        await AssertNotFoundAsync(gateway, "/no%01such/m/x", "service_not_found", "Service 'no?such' is not configured.");
        await AssertNotFoundAsync(gateway, "/svc/" + new string('x', 150) + "/x", "model_not_found", $"Model '{new string('x', 100)}' is not configured for service 'svc'.");
        await AssertNotFoundAsync(gateway, "/api/health/status/nosuch", "service_not_found", "Service 'nosuch' is not configured.");
        await AssertNotFoundAsync(gateway, "/api/health/status/no%3Asuch", "service_not_found", "Service 'no:such' is not configured.");
    }

    [Fact]
    public async Task Metrics_take_the_gateway_key_unless_METRICS_KEY_is_set()
    {
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k" });
        await AssertRefusedAsync(gateway, gateway.Port, null);
        await AssertServedAsync(gateway, gateway.Port, ("X-API-Key", "k"));

        await using var keyed = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k", ["METRICS_KEY"] = "mk" });
        await AssertRefusedAsync(keyed, keyed.Port, ("X-API-Key", "k"));
        await AssertServedAsync(keyed, keyed.Port, ("Authorization", "Bearer mk"));
    }

    [Fact]
    public async Task METRICS_PORT_serves_metrics_only_and_takes_only_METRICS_KEY()
    {
        var metricsPort = FreePort.Get();
        var environment = new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k", ["METRICS_PORT"] = metricsPort.ToString() };
        await using (var open = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)), environment))
        {
            // Without METRICS_KEY the dedicated port needs no key; the main port no longer serves /metrics.
            await AssertServedAsync(open, metricsPort, null);
            await AssertNotFoundAsync(open, "/metrics", "route_not_found", "Not found. Proxy routes have the form /{service}/{model}[/{path}].");
            using var other = await open.Client.GetAsync($"http://127.0.0.1:{metricsPort}/health");
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
            Assert.Equal("This port serves /metrics only.", Message(await other.Content.ReadAsStringAsync()));
        }

        metricsPort = FreePort.Get();
        environment["METRICS_PORT"] = metricsPort.ToString();
        environment["METRICS_KEY"] = "mk";
        await using var keyed = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)), environment);
        await AssertRefusedAsync(keyed, metricsPort, ("X-API-Key", "k"));
        await AssertServedAsync(keyed, metricsPort, ("X-API-Key", "mk"));
    }

    private static async Task AssertServedAsync(GatewayProcess gateway, int port, (string Name, string Value)? key)
    {
        using var get = await MetricsAsync(gateway, port, HttpMethod.Get, key);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", get.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", get.Headers.CacheControl?.ToString());
        var body = await get.Content.ReadAsByteArrayAsync();
        Assert.Equal(body.Length, get.Content.Headers.ContentLength);
        Assert.Contains("edgeproxy_backend_up{service=\"svc\",model=\"m\",backend=\"b1\"}", System.Text.Encoding.UTF8.GetString(body));

        using var head = await MetricsAsync(gateway, port, HttpMethod.Head, key);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.True(head.Content.Headers.ContentLength > 0);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    private static async Task AssertRefusedAsync(GatewayProcess gateway, int port, (string Name, string Value)? key)
    {
        using var response = await MetricsAsync(gateway, port, HttpMethod.Get, key);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        var body = await response.Content.ReadAsStringAsync();
        JsonAssert.ErrorBody(body, "invalid_api_key");
        Assert.Equal("Missing or invalid metrics key.", Message(body));
    }

    private static async Task<HttpResponseMessage> MetricsAsync(GatewayProcess gateway, int port, HttpMethod method, (string Name, string Value)? key)
    {
        using var request = new HttpRequestMessage(method, $"http://127.0.0.1:{port}/metrics");
        if (key is { } header)
        {
            request.Headers.TryAddWithoutValidation(header.Name, header.Value);
        }
        return await gateway.Client.SendAsync(request);
    }

    private static async Task AssertNotFoundAsync(GatewayProcess gateway, string path, string code, string message)
    {
        var (status, body) = await SendAsync(gateway, path);
        Assert.Equal(HttpStatusCode.NotFound, status);
        JsonAssert.ErrorBody(body, code);
        Assert.Equal(message, Message(body));
    }

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(GatewayProcess gateway, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + path);
        using var response = await gateway.Client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static string? Message(string body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("error").GetProperty("message").GetString();
    }
}
