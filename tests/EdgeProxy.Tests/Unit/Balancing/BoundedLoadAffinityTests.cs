using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;
using static EdgeProxy.Tests.Unit.Balancing.BalancingFixtures;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>
/// Affinity with bounded loads: a key stays on its home backend while that backend's in-flight load
/// is within the balance factor of its weighted fair share; beyond it the key goes to the next
/// backend of its own deterministic order (the same one every time, on every replica), and comes
/// home when the load evens out.
/// </summary>
public sealed class BoundedLoadAffinityTests
{
    private const int Keys = 400;

    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private long Now => _time.GetTimestamp();

    private static AffinityConfig Affinity(string kind) => kind == "header" ? new AffinityConfig(AffinityKind.Header, "X-Session-ID") : AffinityConfig.ClientIp;

    private ModelRoute Route(string affinity, params int[] weights) => BalancingFixtures.Route(_time, Affinity(affinity), BalancePolicy.RoundRobin, weights);

    private int Pick(ModelRoute route, ulong key, ulong tried = 0)
    {
        var pick = BackendSelector.Select(route, key, tried, Now, allowPanic: true);
        Assert.True(pick.Found);
        Assert.False(pick.Panic);
        return pick.Index;
    }

    [Theory]
    // in-flight, weight, total in-flight, total weight, factor, may take one more
    [InlineData(0, 1, 0, 2, 1.25, true)]    // idle: 1 <= ceil(0.625) = 1
    [InlineData(1, 1, 1, 3, 1.25, true)]    // the floor: 2 > ceil(0.83) = 1, but a backend may always hold 2
    [InlineData(1, 1, 1, 20, 1.25, true)]   // the floor, whatever the weight share
    [InlineData(2, 1, 2, 3, 1.25, false)]   // past the floor: 3 > max(2, ceil(1.25))
    [InlineData(1, 1, 1, 2, 1.25, true)]    // 2 <= ceil(1.25) = 2
    [InlineData(2, 1, 2, 2, 1.25, false)]   // 3 >  ceil(1.875) = 2
    [InlineData(5, 1, 20, 4, 1.25, true)]   // even load: 6 <= ceil(6.5625) = 7
    [InlineData(7, 1, 22, 4, 1.25, true)]   // 8 <= ceil(7.1875) = 8
    [InlineData(8, 1, 23, 4, 1.25, false)]  // 9 >  ceil(7.5) = 8
    [InlineData(3, 1, 3, 4, 2.0, false)]    // 4 >  ceil(2) = 2
    [InlineData(3, 1, 3, 2, 2.0, true)]     // a factor of n never binds: 4 <= ceil(4) = 4
    [InlineData(14, 3, 14, 4, 1.25, true)]  // weight 3 of 4: 15 <= ceil(14.06) = 15
    [InlineData(15, 3, 15, 4, 1.25, false)] // 16 >  ceil(15) = 15
    [InlineData(1, 1, 6, 7, 1.25, true)]    // weight 1 of 7 with 5:1:1: 2 <= ceil(1.25) = 2
    [InlineData(2, 1, 7, 7, 1.25, false)]   // 3 >  ceil(1.43) = 2
    [InlineData(99, 1, 99, 2, 1000, true)]  // a huge factor is strict pinning
    public void Bounded_load_rule(long inFlight, int weight, long total, long totalWeight, double factor, bool expected)
    {
        Assert.Equal(expected, BackendSelector.WithinBound(inFlight, weight, total, totalWeight, factor));
    }

    [Theory]
    [InlineData("client_ip", 0)]
    [InlineData("client_ip", 1)]
    [InlineData("client_ip", 5)]
    [InlineData("client_ip", 40)]
    [InlineData("header", 5)]
    public void Key_stays_home_while_the_load_is_even(string affinity, int load)
    {
        var route = Route(affinity, 1, 1, 1, 1);
        for (var k = 0; k < Keys; k++)
        {
            var key = IpKey(k);
            var home = route.Affinity!.Lookup(key);
            Assert.Equal(home, Order(route, key)[0]);

            // Even load, and the home carrying a little more than the others: still home.
            SetLoad(route, load, load, load, load);
            Assert.Equal(home, Pick(route, key));
            var loads = new[] { load, load, load, load };
            loads[home] = load + (load / 5);
            SetLoad(route, loads);
            Assert.Equal(home, Pick(route, key));
        }
    }

    [Theory]
    [InlineData("client_ip", new[] { 1, 1, 1, 1 })]
    [InlineData("client_ip", new[] { 1, 1, 1 })]
    [InlineData("client_ip", new[] { 3, 2, 1, 1 })]
    [InlineData("header", new[] { 1, 1, 1, 1 })]
    public void Overloaded_home_sends_the_key_to_its_next_backend_every_time_and_it_returns(string affinity, int[] weights)
    {
        var route = Route(affinity, weights);
        var replica = BalancingFixtures.Route(UnitFixtures.Clock(), Affinity(affinity), BalancePolicy.RoundRobin, weights);
        var n = weights.Length;
        var moved = new HashSet<int>();
        for (var k = 0; k < Keys; k++)
        {
            var key = IpKey(k);
            var order = Order(route, key);
            Assert.Equal(Enumerable.Range(0, n).Order(), order.Order());
            Assert.Equal(order, Order(replica, key));
            var (home, next, third) = (order[0], order[1], order[2]);

            // 1. Home far over the factor (loads per unit of weight: 40 at home, 1 elsewhere): the
            //    key goes to its next backend, the same one each time, on both replicas.
            var loads = weights.Select(w => w).ToArray();
            loads[home] = 40 * weights[home];
            SetLoad(route, loads);
            SetLoad(replica, loads);
            for (var r = 0; r < 5; r++)
            {
                Assert.Equal(next, Pick(route, key));
                Assert.Equal(next, Pick(replica, key));
            }
            moved.Add(next);

            // 2. Next busy as well: the third in the key's order, not wherever round-robin points.
            loads[next] = 40 * weights[next];
            SetLoad(route, loads);
            Assert.Equal(third, Pick(route, key));

            // 3. Next unhealthy instead of busy: skipped the same way.
            loads[next] = weights[next];
            SetLoad(route, loads);
            UnitFixtures.MarkUnhealthy(route.Backends[next].State);
            Assert.Equal(third, Pick(route, key));
            UnitFixtures.MarkHealthy(route.Backends[next].State);
            _time.Advance(TimeSpan.FromSeconds(30)); // past slow start

            // 4. Load evens out (proportional to the weights): home again.
            SetLoad(route, weights.Select(w => 3 * w).ToArray());
            Assert.Equal(home, Pick(route, key));
        }

        // The keys of a busy backend spill over several backends, not all onto one.
        Assert.True(moved.Count > 1, $"next backends: {string.Join(", ", moved)}");
    }

    [Theory]
    [InlineData(new[] { 1, 1, 1, 1 }, 1.25, 40)]
    [InlineData(new[] { 1, 1, 1 }, 1.25, 30)]
    [InlineData(new[] { 1, 1, 1, 1 }, 2.0, 40)]
    [InlineData(new[] { 5, 1, 1 }, 1.25, 70)]
    public void One_key_with_many_concurrent_requests_spreads_within_the_bound(int[] weights, double factor, int requests)
    {
        var route = BalancingFixtures.Route(_time, AffinityConfig.ClientIp, BalancePolicy.RoundRobin, weights, factor);
        var key = IpKey(7);
        var home = route.Affinity!.Lookup(key);
        var total = 0;
        for (var i = 0; i < requests; i++)
        {
            var index = Pick(route, key);
            route.Backends[index].State.TryStart();
            total++;
            var bound = Math.Max(BackendSelector.BoundFloor, Math.Ceiling(factor * total * weights[index] / weights.Sum()));
            Assert.True(route.Backends[index].State.InFlight <= bound, $"request {i}: b{index} has {route.Backends[index].State.InFlight} in flight, bound {bound}");
        }
        var loads = Loads(route);
        Assert.True(loads.Count(l => l > 0) >= 2, "loads " + string.Join(", ", loads));
        Assert.True(loads[home] > 0);

        // The requests finish: the key is home again.
        SetLoad(route, new int[weights.Length]);
        Assert.Equal(home, Pick(route, key));
    }

    [Theory]
    [InlineData(new[] { 1, 1, 1, 1 }, new[] { 0, 0, 0, 0 })]
    [InlineData(new[] { 1, 1, 1, 1 }, new[] { 12, 0, 3, 5 })]
    [InlineData(new[] { 5, 1, 1 }, new[] { 9, 4, 0 })]
    [InlineData(new[] { 3, 2, 1, 1, 1 }, new[] { 30, 1, 1, 9, 0 })]
    [InlineData(new[] { 1, 1 }, new[] { 7, 0 })]
    public void Two_replicas_agree_for_every_key(int[] weights, int[] loads)
    {
        // Two gateways built from the same config, with no shared state, seeing the same loads.
        var a = BalancingFixtures.Route(UnitFixtures.Clock(), AffinityConfig.ClientIp, BalancePolicy.RoundRobin, weights);
        var b = BalancingFixtures.Route(UnitFixtures.Clock(), AffinityConfig.ClientIp, BalancePolicy.LeastOutstanding, weights);
        SetLoad(a, loads);
        SetLoad(b, loads);
        for (var k = 0; k < 5_000; k++)
        {
            var key = IpKey(k);
            var pa = BackendSelector.Select(a, key, 0, Now, true);
            var pb = BackendSelector.Select(b, key, 0, Now, true);
            Assert.True(pa.Index == pb.Index, $"key {k}: b{pa.Index} on one replica, b{pb.Index} on the other");
        }
    }

    [Theory]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 1, 1, 1 })]
    [InlineData(new[] { 10, 5, 3, 1, 1 })]
    public void Weights_are_respected_over_many_keys_under_load(int[] weights)
    {
        // 3,000 clients each with one request in flight: the shares follow the weights and no
        // backend goes past its bounded share at any point.
        var route = Route("client_ip", weights);
        const int Clients = 3_000;
        for (var k = 0; k < Clients; k++)
        {
            var index = Pick(route, IpKey(k));
            route.Backends[index].State.TryStart();
            var bound = Math.Max(BackendSelector.BoundFloor, Math.Ceiling(ModelConfig.DefaultBalanceFactor * (k + 1) * weights[index] / weights.Sum()));
            Assert.True(route.Backends[index].State.InFlight <= bound);
        }
        var loads = Loads(route);
        for (var i = 0; i < weights.Length; i++)
        {
            var expected = (double)weights[i] / weights.Sum();
            var actual = (double)loads[i] / Clients;
            Assert.True(Math.Abs(actual - expected) <= 0.03, $"b{i}: {actual:P2} of clients, weight share {expected:P2}");
        }
    }
}
