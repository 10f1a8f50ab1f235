using System.Net;
using BenchmarkDotNet.Attributes;
using EdgeProxy.Balancing;
using EdgeProxy.Routing;

namespace EdgeProxy.Benchmarks;

/// <summary>One backend pick per policy: weighted round-robin, client-IP affinity, header affinity.</summary>
[MemoryDiagnoser]
public class BalancerBenchmarks
{
    private ModelRoute _roundRobin = null!;
    private ModelRoute _ipAffinity = null!;
    private ModelRoute _headerAffinity = null!;
    private readonly IPAddress _client = IPAddress.Parse("10.1.2.3");
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        var table = Fixtures.Table();
        table.TryGetModel("svc0", "model-1", out var rr);
        table.TryGetModel("svc0", "model-0", out var ip);
        table.TryGetModel("svc0", "model-2", out var header);
        (_roundRobin, _ipAffinity, _headerAffinity) = (rr!, ip!, header!);
        _now = TimeProvider.System.GetTimestamp();
    }

    [Benchmark(Baseline = true)]
    public int WeightedRoundRobin() => BackendSelector.Select(_roundRobin, null, 0, _now, allowPanic: true).Index;

    [Benchmark]
    public int ClientIpAffinity() => BackendSelector.Select(_ipAffinity, StableHash.Hash(_client), 0, _now, allowPanic: true).Index;

    [Benchmark]
    public int HeaderAffinity() => BackendSelector.Select(_headerAffinity, StableHash.Hash("session-0123456789abcdef".AsSpan()), 0, _now, allowPanic: true).Index;
}
