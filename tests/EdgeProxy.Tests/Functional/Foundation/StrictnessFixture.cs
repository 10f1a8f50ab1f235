using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// One gateway per <see cref="GatewayVariant"/> (fast path on/off × epoll/sockets), each in front of
/// its own <see cref="RecordingBackend"/> (so what reached a backend is known per variant), started
/// once for a whole test class. Service `svc`, model `m`; no gateway key (requests need no
/// credentials); passive ejection effectively off, so a run of 502s never ejects the backend.
/// </summary>
public sealed class StrictnessFixture : IAsyncLifetime
{
    private static readonly GatewayVariant[] AllVariants =
        [GatewayVariant.FastEpoll, GatewayVariant.FastSockets, GatewayVariant.GeneralEpoll, GatewayVariant.GeneralSockets];

    private readonly List<(GatewayVariant Variant, GatewayProcess Gateway, RecordingBackend Backend)> _gateways = [];

    internal IReadOnlyList<(GatewayVariant Variant, GatewayProcess Gateway, RecordingBackend Backend)> Gateways => _gateways;

    /// <summary>Sets every backend's answer.</summary>
    internal void Answer(Answer answer)
    {
        foreach (var (_, _, backend) in _gateways)
        {
            backend.Answer = answer;
        }
    }

    public async Task InitializeAsync()
    {
        var backends = AllVariants.Select(_ => new RecordingBackend()).ToArray();
        var starts = AllVariants.Select((variant, i) => GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("recorder", backends[i].Url, 1)),
            variant.Apply(new Dictionary<string, string>
            {
                ["HEALTH_CHECK_INTERVAL"] = "3600",
                ["PASSIVE_FAILURE_THRESHOLD"] = "10000",
                ["LOG_LEVEL"] = "WARNING",
                ["MAX_REQUEST_BODY_MB"] = "1",
                ["REQUEST_TIMEOUT"] = "5",
            }))).ToArray();
        try
        {
            await Task.WhenAll(starts);
        }
        catch
        {
            foreach (var start in starts.Where(s => s.IsCompletedSuccessfully))
            {
                await start.Result.DisposeAsync();
            }
            foreach (var backend in backends)
            {
                backend.Dispose();
            }
            throw;
        }
        for (var i = 0; i < AllVariants.Length; i++)
        {
            _gateways.Add((AllVariants[i], starts[i].Result, backends[i]));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var (_, gateway, backend) in _gateways)
        {
            await gateway.DisposeAsync();
            backend.Dispose();
        }
    }
}
