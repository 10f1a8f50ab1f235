using System.Net.Http.Headers;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// One real test backend and one real gateway (auth on) in front of it, shared by the tests of a
/// class. Service `svc` has three models:
/// `m` -> the backend; `prefixed` -> the backend's `/echo` (a base URL with a path);
/// `dead` -> a loopback port nothing listens on (connections refused).
/// Subclasses add environment variables (timeouts, trusted proxies).
/// </summary>
public class EchoGatewayFixture : IAsyncLifetime
{
    public const string GatewayKey = "fixture-gateway-key-4d1c";

    internal BackendProcess Backend { get; private set; } = null!;

    internal GatewayProcess Gateway { get; private set; } = null!;

    private readonly ClosedPort _dead = new();

    /// <summary>A loopback port that refuses connections while the fixture lives; the `dead` model points at it.</summary>
    public int DeadPort => _dead.Port;

    protected virtual void AddEnvironment(IDictionary<string, string> environment)
    {
    }

    public async Task InitializeAsync()
    {
        Backend = await BackendProcess.StartAsync("b1");
        // These tests count the backend's requests; health probes of the `prefixed` backend go to
        // `/echo/health` and would count too. So: one round of checks at start, awaited below, then none.
        var environment = new Dictionary<string, string> { ["BACKEND_API_KEY"] = GatewayKey, ["HEALTH_CHECK_INTERVAL"] = "3600" };
        AddEnvironment(environment);
        try
        {
            // The models pin by client address: these tests are about relaying (bodies on the fast
            // path included), which a prefix model (the default) leaves to the general path for
            // any request with a body; PrefixAffinityTests covers that default.
            Gateway = await GatewayProcess.StartAsync(
                BackendsJson.ClientIpAffinity(BackendsJson.Models("svc",
                    ("m", [BackendsJson.Backend("b1", Backend.Url)]),
                    ("prefixed", [BackendsJson.Backend("b1-echo", Backend.Url + "/echo")]),
                    ("dead", [BackendsJson.Backend("dead", $"http://127.0.0.1:{DeadPort}")]))),
                environment);
            await WaitForFirstHealthChecksAsync();
        }
        catch
        {
            // xunit does not dispose a fixture whose initialisation failed: no orphaned backend.
            await Backend.DisposeAsync();
            throw;
        }
    }

    /// <summary>Every backend has had its first active check (they run within a second of start).</summary>
    private Task WaitForFirstHealthChecksAsync() => Poll.UntilAsync(
        async () => !(await Gateway.Client.GetStringAsync(Gateway.BaseUrl + "/api/health/status")).Contains("\"last_check\":null", StringComparison.Ordinal),
        TimeSpan.FromSeconds(20), "the first health check of every backend");

    public async Task DisposeAsync()
    {
        if (Gateway is not null)
        {
            await Gateway.DisposeAsync();
        }
        if (Backend is not null)
        {
            await Backend.DisposeAsync();
        }
        _dead.Dispose();
    }

    /// <summary>A request to the gateway carrying the gateway key as a Bearer token.</summary>
    internal HttpRequestMessage Authorized(HttpMethod method, string pathAndQuery)
    {
        var request = new HttpRequestMessage(method, Gateway.BaseUrl + pathAndQuery);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayKey);
        return request;
    }

    /// <summary>Total requests the backend has seen (health checks and /control excluded).</summary>
    internal async Task<long> BackendRequestsAsync() => (await Backend.StatsAsync()).GetProperty("requests").GetInt64();

    /// <summary>How many requests for exactly this (decoded) path the backend has seen.</summary>
    internal async Task<long> BackendHitsAsync(string path)
    {
        var stats = await Backend.StatsAsync();
        return stats.GetProperty("by_path").TryGetProperty(path, out var n) ? n.GetInt64() : 0;
    }
}

/// <summary>REQUEST_TIMEOUT=1, for the 504 path.</summary>
public sealed class ShortTimeoutFixture : EchoGatewayFixture
{
    protected override void AddEnvironment(IDictionary<string, string> environment) => environment["REQUEST_TIMEOUT"] = "1";
}

/// <summary>TRUSTED_PROXIES=127.0.0.9: only that source address may vouch for X-Forwarded-*.</summary>
public sealed class TrustedProxyFixture : EchoGatewayFixture
{
    public const string TrustedProxy = "127.0.0.9";

    protected override void AddEnvironment(IDictionary<string, string> environment) => environment["TRUSTED_PROXIES"] = TrustedProxy;
}

internal static class JsonAssert
{
    /// <summary>Asserts a gateway error body: JSON with `error.code` and a `detail` message; returns the root.</summary>
    public static JsonElement ErrorBody(string body, string code)
    {
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement.Clone();
        Assert.Equal(code, root.GetProperty("error").GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("error").GetProperty("message").GetString()));
        Assert.False(string.IsNullOrEmpty(root.GetProperty("detail").GetString()));
        return root;
    }
}
