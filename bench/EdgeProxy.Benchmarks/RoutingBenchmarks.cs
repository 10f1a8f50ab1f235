using BenchmarkDotNet.Attributes;
using EdgeProxy.Routing;

namespace EdgeProxy.Benchmarks;

/// <summary>Raw request target → model route: what the dispatcher does before forwarding.</summary>
[MemoryDiagnoser]
public class RoutingBenchmarks
{
    private RouteTable _table = null!;
    private const string Target = "/svc2/model-5/v1/chat/completions?stream=true";

    [GlobalSetup]
    public void Setup() => _table = Fixtures.Table();

    [Benchmark]
    public bool ParseAndLookup()
    {
        return GatewayPath.TryParse(Target, out var path) && _table.TryGetModel(path.Service, path.Model, out _);
    }
}
