using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// MAX_CONNECTIONS means what it says: at most that many requests are in flight to one backend at
/// once, whichever request path carries them. Sixteen concurrent requests — half plain HTTP/1.1
/// (the fast path, when on) and half HTTP/1.0 (always the general path) — meet a backend that
/// holds each one for 150 ms; it must never see more than MAX_CONNECTIONS at once, and with the
/// budget shared it sees exactly that many at the peak. (Before, each path kept its own cap: the
/// backend saw twice the limit.)
/// </summary>
public sealed class MaxConnectionsTests
{
    private const string Key = "k-max";
    private const int Limit = 4;

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task Both_paths_draw_from_one_budget_per_backend(string variant)
    {
        using var backend = new HoldingBackend(TimeSpan.FromMilliseconds(150));
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("held", backend.Url, 1)),
            GatewayVariant.Parse(variant).Apply(new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600", ["MAX_CONNECTIONS"] = Limit.ToString(),
            }));

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => RawHttp.SendAsync(gateway.Port,
            $"GET /svc/m/held/{i} HTTP/1.{(i % 2 == 0 ? 1 : 0)}\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close", timeout: TimeSpan.FromSeconds(30))));

        Assert.All(responses, r => Assert.True(r.Status == 200, r.ToString()));
        Assert.Equal(16, backend.Served);
        Assert.True(backend.PeakInFlight <= Limit, $"the backend saw {backend.PeakInFlight} requests at once; MAX_CONNECTIONS is {Limit}");
        Assert.Equal(Limit, backend.PeakInFlight);
    }
}
