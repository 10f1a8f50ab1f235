using System.Net;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>Routes with a balance policy and synthetic in-flight counts for the load-aware pick tests.</summary>
internal static class BalancingFixtures
{
    public static ModelRoute Route(
        FakeTimeProvider time, AffinityConfig affinity, BalancePolicy balance, int[] weights, double factor = ModelConfig.DefaultBalanceFactor)
    {
        var backends = weights.Select((w, i) => UnitFixtures.Backend($"b{i}", w)).ToArray();
        var config = new BackendsConfig([new ServiceConfig("svc", [new ModelConfig("m", backends, affinity, balance, factor)])]);
        return UnitFixtures.Route(time, config);
    }

    /// <summary>Sets every backend's in-flight count through the same calls the request paths make.</summary>
    public static void SetLoad(ModelRoute route, params int[] loads)
    {
        for (var i = 0; i < loads.Length; i++)
        {
            var state = route.Backends[i].State;
            for (var guard = 0; state.InFlight < loads[i] && guard < 100_000; guard++)
            {
                state.TryStart();
            }
            for (var guard = 0; state.InFlight > loads[i] && guard < 100_000; guard++)
            {
                state.OnRequestEnd(error: false);
            }
            Assert.Equal(loads[i], state.InFlight);
        }
    }

    public static int[] Loads(ModelRoute route) => route.Backends.Select(b => b.State.InFlight).ToArray();

    public static ulong IpKey(int i) => StableHash.Hash(new IPAddress(new byte[] { 10, (byte)(i >> 16), (byte)(i >> 8), (byte)i }));

    /// <summary>The key's whole preference order (home first), as the selector walks it.</summary>
    public static int[] Order(ModelRoute route, ulong key)
    {
        Span<double> scratch = stackalloc double[route.Backends.Length];
        var order = new PreferenceOrder(route.Backends, route.Affinity!, key, scratch);
        var result = new List<int>();
        while (order.MoveNext(out var index))
        {
            result.Add(index);
        }
        return result.ToArray();
    }
}
