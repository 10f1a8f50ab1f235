using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit;

/// <summary>Small builders shared by the unit tests: configs, route tables and a fake clock.</summary>
internal static class UnitFixtures
{
    /// <summary>A fixed start on a 5 s boundary so per-slot statistics are deterministic.</summary>
    public static readonly DateTimeOffset Epoch = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static FakeTimeProvider Clock() => new(Epoch);

    public static BackendConfig Backend(string id, int weight = 1, string? url = null, string? apiKey = null, UpstreamAuthMode? authMode = null)
        => new() { Id = id, Name = "name of " + id, Url = url ?? $"http://{id}.test:5000", Weight = weight, ApiKey = apiKey, AuthMode = authMode };

    public static BackendsConfig Config(string service, string model, AffinityConfig affinity, params BackendConfig[] backends)
        => new([new ServiceConfig(service, [new ModelConfig(model, backends, affinity)])]);

    public static BackendsConfig Config(AffinityConfig affinity, params (string Id, int Weight)[] backends)
        => Config("svc", "m", affinity, backends.Select(b => Backend(b.Id, b.Weight)).ToArray());

    public static HealthPolicy Policy(TimeSpan? slowStart = null) => new()
    {
        UnhealthyThreshold = 2,
        HealthyThreshold = 1,
        PassiveFailureThreshold = 5,
        EjectionBase = TimeSpan.FromSeconds(10),
        EjectionMax = TimeSpan.FromSeconds(300),
        SlowStart = slowStart ?? TimeSpan.FromSeconds(30),
    };

    /// <summary>
    /// The one model route of a single-model config, built the way the gateway builds it. Without
    /// <paramref name="settings"/>, backends have no capacity limit to speak of: the load simulations
    /// hold more requests in flight than MAX_CONNECTIONS' default.
    /// </summary>
    public static ModelRoute Route(FakeTimeProvider time, BackendsConfig config, HealthPolicy? policy = null, GatewaySettings? settings = null)
        => RouteTable.Build(config, settings ?? new GatewaySettings { MaxConnections = 100_000 }, policy ?? Policy(), time).Models.Single();

    public static ModelRoute Route(FakeTimeProvider time, AffinityConfig affinity, params (string Id, int Weight)[] backends)
        => Route(time, Config(affinity, backends));

    /// <summary>Drives active checks past the unhealthy threshold.</summary>
    public static void MarkUnhealthy(BackendState state)
    {
        for (var i = 0; i < 10 && state.Status != HealthStatus.Unhealthy; i++)
        {
            state.ReportCheck(false, 1);
        }
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
    }

    public static void MarkHealthy(BackendState state)
    {
        for (var i = 0; i < 10 && state.Status != HealthStatus.Healthy; i++)
        {
            state.ReportCheck(true, 1);
        }
        Assert.Equal(HealthStatus.Healthy, state.Status);
    }

    /// <summary>A fresh directory under the temp path, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public TempDir()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "edgeproxy-unit-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }

        public string Write(string name, string content)
        {
            var file = System.IO.Path.Combine(Path, name);
            File.WriteAllText(file, content);
            return file;
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a leftover temp dir does not fail a test.
            }
        }
    }
}
