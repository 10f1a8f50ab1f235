using System.Net;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>Picks over a real <see cref="ModelRoute"/> built by <see cref="RouteTable.Build"/> on a fake clock.</summary>
public sealed class BackendSelectorTests
{
    private static readonly AffinityConfig None = new(AffinityKind.None);

    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private long Now => _time.GetTimestamp();

    private static ulong IpKey(int i) => StableHash.Hash(new IPAddress(new byte[] { 10, (byte)(i >> 16), (byte)(i >> 8), (byte)i }));

    private int[] Count(ModelRoute route, int picks, Func<int, ulong?>? key = null, ulong tried = 0)
    {
        var counts = new int[route.Backends.Length];
        for (var i = 0; i < picks; i++)
        {
            var pick = BackendSelector.Select(route, key?.Invoke(i), tried, Now, allowPanic: true);
            Assert.True(pick.Found);
            Assert.False(pick.Panic);
            Assert.Equal(Admission.Admitted, pick.Admission);
            counts[pick.Index]++;
        }
        return counts;
    }

    private static void AssertShares(int[] counts, int[] weights, double tolerance = 0.03)
    {
        var picks = counts.Sum();
        var total = weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            var expected = (double)weights[i] / total;
            var actual = (double)counts[i] / picks;
            Assert.True(Math.Abs(actual - expected) <= tolerance, $"backend {i}: {actual:P2} of picks, weight share {expected:P2}");
        }
    }

    [Theory]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 1, 1, 1 })]
    [InlineData(new[] { 3, 2 })]
    [InlineData(new[] { 10, 5, 3, 1, 1 })]
    public void Round_robin_follows_weights(int[] weights)
    {
        var route = UnitFixtures.Route(_time, None, weights.Select((w, i) => ($"b{i}", w)).ToArray());
        var counts = Count(route, 10_000);
        AssertShares(counts, weights);

        // Smooth weighted round-robin is exact per cycle, so over 10,000 picks each backend is within one cycle of its share.
        var cycle = route.Sequence.Length;
        for (var i = 0; i < weights.Length; i++)
        {
            Assert.InRange(counts[i], 10_000 / cycle * (weights[i] * cycle / weights.Sum()), (10_000 / cycle + 1) * (weights[i] * cycle / weights.Sum()));
        }
    }

    [Fact]
    public void Client_ip_affinity_spreads_clients_by_weight()
    {
        int[] weights = [5, 1, 1];
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 5), ("b1", 1), ("b2", 1));
        AssertShares(Count(route, 10_000, i => IpKey(i)), weights);
    }

    [Fact]
    public void Affinity_pins_each_client_to_one_backend()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 1), ("b1", 1), ("b2", 1));
        for (var client = 0; client < 500; client++)
        {
            var first = BackendSelector.Select(route, IpKey(client), 0, Now, true).Index;
            for (var i = 0; i < 10; i++)
            {
                Assert.Equal(first, BackendSelector.Select(route, IpKey(client), 0, Now, true).Index);
            }
            Assert.Equal(first, route.Affinity!.Lookup(IpKey(client)));
        }
    }

    [Fact]
    public void No_key_on_an_affinity_route_falls_back_to_round_robin()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 2), ("b1", 1));
        Assert.Equal([6_667, 3_333], Count(route, 10_000));
    }

    [Fact]
    public void Affinity_none_route_has_no_table_and_ignores_keys()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1), ("b1", 1));
        Assert.Null(route.Affinity);
        Assert.Equal([5_000, 5_000], Count(route, 10_000, _ => 42UL));
    }

    [Fact]
    public void Unhealthy_backend_is_never_picked()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 5), ("b1", 1), ("b2", 1));
        UnitFixtures.MarkUnhealthy(route.Backends[0].State);

        var roundRobin = Count(route, 10_000);
        var pinned = Count(route, 10_000, i => IpKey(i));
        Assert.Equal(0, roundRobin[0]);
        Assert.Equal(0, pinned[0]);
        // The rest keep their relative weights.
        Assert.Equal(5_000, roundRobin[1]);
        Assert.Equal(5_000, roundRobin[2]);
    }

    /// <summary>
    /// The share of a backend that is out goes to the others in proportion to their weights, not
    /// all to whichever backend follows it in the round-robin order.
    /// </summary>
    [Theory]
    [InlineData(new[] { 1, 1, 1 }, 0)]
    [InlineData(new[] { 1, 1, 1 }, 1)]
    [InlineData(new[] { 5, 1, 1 }, 0)]
    [InlineData(new[] { 3, 2, 1 }, 0)]
    [InlineData(new[] { 1, 3, 2, 2 }, 1)]
    public void Traffic_of_an_unhealthy_backend_is_shared_by_weight(int[] weights, int down)
    {
        var route = UnitFixtures.Route(_time, None, weights.Select((w, i) => ($"b{i}", w)).ToArray());
        UnitFixtures.MarkUnhealthy(route.Backends[down].State);
        var counts = Count(route, 10_000);
        Assert.Equal(0, counts[down]);
        AssertShares(counts, weights.Select((w, i) => i == down ? 0 : w).ToArray());
    }

    [Fact]
    public void One_failed_check_does_not_take_a_backend_out()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1), ("b1", 1));
        route.Backends[0].State.ReportCheck(false, 1);
        Assert.Equal([5_000, 5_000], Count(route, 10_000));
    }

    [Fact]
    public void Tried_backends_are_excluded()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 5), ("b1", 1), ("b2", 1));
        var notFirst = Count(route, 7_000, i => IpKey(i), tried: 1UL << 0);
        Assert.Equal(0, notFirst[0]);
        Assert.True(notFirst[1] > 0 && notFirst[2] > 0);

        var onlyLast = Count(route, 1_000, i => IpKey(i), tried: (1UL << 0) | (1UL << 1));
        Assert.Equal([0, 0, 1_000], onlyLast);

        var all = BackendSelector.Select(route, IpKey(1), 0b111, Now, allowPanic: true);
        Assert.False(all.Found);
        Assert.Equal(Pick.None, all);
    }

    [Fact]
    public void Tried_bit_64_of_a_large_model_is_honoured()
    {
        var backends = Enumerable.Range(0, 64).Select(i => ($"b{i}", 1)).ToArray();
        var route = UnitFixtures.Route(_time, None, backends);
        var tried = ulong.MaxValue & ~(1UL << 63);
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(63, BackendSelector.Select(route, null, tried, Now, true).Index);
        }
    }

    [Fact]
    public void All_unhealthy_enters_panic_mode_or_fails_fast()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 1), ("b1", 1), ("b2", 1));
        foreach (var backend in route.Backends)
        {
            UnitFixtures.MarkUnhealthy(backend.State);
        }

        var seen = new HashSet<int>();
        for (var i = 0; i < 300; i++)
        {
            var pick = BackendSelector.Select(route, IpKey(i), 0, Now, allowPanic: true);
            Assert.True(pick.Found);
            Assert.True(pick.Panic);
            seen.Add(pick.Index);
        }
        Assert.Equal(3, seen.Count);

        // Panic still honours the failover mask.
        var panicTried = BackendSelector.Select(route, null, 0b011, Now, allowPanic: true);
        Assert.Equal((2, true), (panicTried.Index, panicTried.Panic));
        Assert.False(BackendSelector.Select(route, null, 0b111, Now, allowPanic: true).Found);

        Assert.Equal(Pick.None, BackendSelector.Select(route, IpKey(1), 0, Now, allowPanic: false));
        Assert.Equal(Pick.None, BackendSelector.Select(route, null, 0, Now, allowPanic: false));
    }

    [Fact]
    public void One_healthy_backend_left_takes_everything_without_panic()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 1), ("b1", 1), ("b2", 1));
        UnitFixtures.MarkUnhealthy(route.Backends[0].State);
        UnitFixtures.MarkUnhealthy(route.Backends[2].State);
        Assert.Equal([0, 2_000, 0], Count(route, 2_000, i => i % 2 == 0 ? IpKey(i) : null));
    }

    [Fact]
    public void Unknown_backends_are_used_before_their_first_check()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1), ("b1", 1));
        Assert.All(route.Backends, b => Assert.Equal(HealthStatus.Unknown, b.State.Status));
        Assert.Equal([500, 500], Count(route, 1_000));
    }

    [Fact]
    public void Pinned_client_of_an_unhealthy_backend_gets_the_same_substitute_every_time_and_returns_home()
    {
        foreach (var weights in new[] { new[] { 1, 1, 1 }, new[] { 5, 1, 1 }, new[] { 1, 1 } })
        {
            var time = UnitFixtures.Clock();
            var route = UnitFixtures.Route(time, AffinityConfig.ClientIp, weights.Select((w, i) => ($"b{i}", w)).ToArray());
            var home = route.Affinity!;
            var clients = Enumerable.Range(0, 3_000).Select(IpKey).Where(k => home.Lookup(k) == 0).ToArray();
            Assert.NotEmpty(clients);

            UnitFixtures.MarkUnhealthy(route.Backends[0].State);
            var substitutes = new Dictionary<ulong, int>();
            foreach (var client in clients)
            {
                var first = BackendSelector.Select(route, client, 0, time.GetTimestamp(), true);
                Assert.NotEqual(0, first.Index);
                substitutes[client] = first.Index;
                for (var i = 0; i < 20; i++)
                {
                    var again = BackendSelector.Select(route, client, 0, time.GetTimestamp(), true);
                    Assert.True(first.Index == again.Index, $"weights {string.Join(':', weights)}: client {client:x} went to b{first.Index}, then b{again.Index}");
                }
            }

            // The substitutes share the dead backend's clients; none takes them all (when there are several).
            if (weights.Length > 2)
            {
                Assert.True(substitutes.Values.Distinct().Count() > 1);
            }

            // Back home once healthy and past the slow-start window.
            UnitFixtures.MarkHealthy(route.Backends[0].State);
            time.Advance(TimeSpan.FromSeconds(30));
            foreach (var client in clients)
            {
                for (var i = 0; i < 3; i++)
                {
                    Assert.Equal(0, BackendSelector.Select(route, client, 0, time.GetTimestamp(), true).Index);
                }
            }
        }
    }

    [Fact]
    public void Clients_of_healthy_backends_do_not_move_when_another_backend_fails()
    {
        var route = UnitFixtures.Route(_time, AffinityConfig.ClientIp, ("b0", 1), ("b1", 1), ("b2", 1));
        var keys = Enumerable.Range(0, 3_000).Select(IpKey).ToArray();
        var before = keys.Select(k => BackendSelector.Select(route, k, 0, Now, true).Index).ToArray();
        UnitFixtures.MarkUnhealthy(route.Backends[1].State);
        for (var k = 0; k < keys.Length; k++)
        {
            if (before[k] != 1)
            {
                Assert.Equal(before[k], BackendSelector.Select(route, keys[k], 0, Now, true).Index);
            }
        }
    }

    [Fact]
    public void Ejected_backend_is_skipped_and_gives_exactly_one_trial_after_its_back_off()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1), ("b1", 1));
        var state = route.Backends[0].State;
        Assert.NotNull(state.ReportFailure(trial: false, connectionFailure: true, route.MayEjectAnother));

        Assert.Equal([0, 1_000], Count(route, 1_000));

        _time.Advance(TimeSpan.FromSeconds(10));
        var picks = Enumerable.Range(0, 100).Select(_ => BackendSelector.Select(route, null, 0, Now, true)).ToArray();
        var trial = Assert.Single(picks, p => p.Index == 0);
        Assert.Equal(Admission.Trial, trial.Admission);
        Assert.All(picks.Where(p => p.Index != 0), p => Assert.Equal(Admission.Admitted, p.Admission));
    }
}
