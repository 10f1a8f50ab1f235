using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;
using static EdgeProxy.Tests.Unit.Balancing.BalancingFixtures;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>`"balance": "least_outstanding"`: fewest in-flight requests per unit of weight, with health, trials and slow start.</summary>
public sealed class LeastOutstandingTests
{
    private static readonly AffinityConfig None = new(AffinityKind.None);

    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private long Now => _time.GetTimestamp();

    private ModelRoute Route(params int[] weights) => BalancingFixtures.Route(_time, None, BalancePolicy.LeastOutstanding, weights);

    private Pick Select(ModelRoute route, ulong tried = 0) => BackendSelector.Select(route, null, tried, Now, allowPanic: true);

    /// <summary>Picks once and starts the request, as the forwarder does.</summary>
    private int PickAndStart(ModelRoute route)
    {
        var pick = Select(route);
        Assert.True(pick.Found);
        Assert.False(pick.Panic);
        route.Backends[pick.Index].State.TryStart();
        return pick.Index;
    }

    [Theory]
    // weights, in-flight, expected pick: smallest in-flight / weight
    [InlineData(new[] { 1, 1, 1 }, new[] { 3, 1, 2 }, 1)]
    [InlineData(new[] { 1, 1, 1 }, new[] { 0, 5, 5 }, 0)]
    [InlineData(new[] { 1, 1, 1 }, new[] { 9, 9, 4 }, 2)]
    [InlineData(new[] { 2, 1 }, new[] { 1, 1 }, 0)]                // 1/2 < 1/1
    [InlineData(new[] { 1, 4 }, new[] { 2, 5 }, 1)]                // 5/4 < 2/1
    [InlineData(new[] { 1, 4 }, new[] { 1, 5 }, 0)]                // 1/1 < 5/4
    [InlineData(new[] { 5, 1, 1 }, new[] { 10, 1, 2 }, 1)]         // 1/1 < 10/5 = 2/1
    [InlineData(new[] { 10, 5, 3, 1 }, new[] { 19, 9, 5, 1 }, 3)]  // 1.9, 1.8, 1.67, 1
    public void Picks_the_least_loaded_backend_per_unit_of_weight(int[] weights, int[] inFlight, int expected)
    {
        var route = Route(weights);
        SetLoad(route, inFlight);
        for (var i = 0; i < 5; i++)
        {
            var pick = Select(route);
            Assert.Equal(expected, pick.Index);
            Assert.Equal(Admission.Admitted, pick.Admission);
        }
    }

    [Theory]
    // weights, starting in-flight, picks, in-flight afterwards: the new requests even the load out
    [InlineData(new[] { 1, 1, 1 }, new[] { 10, 0, 0 }, 20, new[] { 10, 10, 10 })]
    [InlineData(new[] { 1, 1, 1, 1 }, new[] { 7, 3, 0, 5 }, 13, new[] { 7, 7, 7, 7 })]
    [InlineData(new[] { 2, 1 }, new[] { 0, 6 }, 12, new[] { 12, 6 })]
    [InlineData(new[] { 5, 1, 1 }, new[] { 0, 0, 0 }, 700, new[] { 500, 100, 100 })]
    [InlineData(new[] { 3, 2, 1 }, new[] { 0, 0, 0 }, 60, new[] { 30, 20, 10 })]
    public void Spreads_new_requests_until_the_load_is_even(int[] weights, int[] start, int picks, int[] expected)
    {
        var route = Route(weights);
        SetLoad(route, start);
        for (var i = 0; i < picks; i++)
        {
            PickAndStart(route);
        }
        Assert.Equal(expected, Loads(route));
    }

    [Theory]
    [InlineData(new[] { 1, 1, 1 })]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 3, 2 })]
    [InlineData(new[] { 10, 5, 3, 1, 1 })]
    public void Weights_are_respected_over_many_picks_with_requests_completing(int[] weights)
    {
        // Steady state: each request lasts 4 x total weight picks, so that many are in flight after each pick.
        var steady = 4 * weights.Sum();
        AssertShares(weights, 0.005, pick => pick + steady);

        // Uneven durations: each request lasts between 1 and 100 later picks (about 50 in flight).
        var random = new Random(16);
        AssertShares(weights, 0.02, pick => pick + random.Next(1, 101));

        void AssertShares(int[] weights, double tolerance, Func<int, int> endOf)
        {
            var route = Route(weights);
            var inFlight = new List<(int End, int Index)>();
            var counts = new int[weights.Length];
            const int Picks = 20_000;
            for (var pick = 0; pick < Picks; pick++)
            {
                for (var i = inFlight.Count - 1; i >= 0; i--)
                {
                    if (inFlight[i].End <= pick)
                    {
                        route.Backends[inFlight[i].Index].State.OnRequestEnd(error: false);
                        inFlight.RemoveAt(i);
                    }
                }
                var index = PickAndStart(route);
                counts[index]++;
                inFlight.Add((endOf(pick), index));
            }
            for (var i = 0; i < weights.Length; i++)
            {
                var expected = (double)weights[i] / weights.Sum();
                var actual = (double)counts[i] / Picks;
                Assert.True(Math.Abs(actual - expected) <= tolerance, $"b{i}: {actual:P2} of picks, weight share {expected:P2}");
            }
        }
    }

    [Theory]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 3, 2 })]
    public void Serial_requests_follow_the_round_robin_order(int[] weights)
    {
        // Nothing in flight at each pick: every backend ties, and the smooth weighted order decides.
        var route = Route(weights);
        var picks = Enumerable.Range(0, 3 * route.Sequence.Length).Select(_ => Select(route).Index).ToArray();
        var expected = Enumerable.Range(0, 3).SelectMany(_ => route.Sequence).ToArray();
        Assert.Equal(expected, picks);
    }

    [Fact]
    public void Idle_backends_with_equal_weights_take_turns()
    {
        // No load at all: ties go round-robin, not always to the first backend.
        var route = Route(1, 1, 1);
        var counts = new int[3];
        for (var i = 0; i < 300; i++)
        {
            counts[Select(route).Index]++;
        }
        Assert.Equal([100, 100, 100], counts);
    }

    [Fact]
    public void Unhealthy_and_tried_backends_are_skipped_however_idle()
    {
        var route = Route(1, 1, 1);
        SetLoad(route, 0, 5, 9);
        UnitFixtures.MarkUnhealthy(route.Backends[0].State);
        Assert.Equal(1, Select(route).Index);
        Assert.Equal(2, Select(route, tried: 1UL << 1).Index);
        Assert.False(BackendSelector.Select(route, null, 0b110, Now, allowPanic: false).Found);
    }

    [Fact]
    public void All_unhealthy_enters_panic_mode_or_fails_fast()
    {
        var route = Route(1, 1);
        UnitFixtures.MarkUnhealthy(route.Backends[0].State);
        UnitFixtures.MarkUnhealthy(route.Backends[1].State);
        var panic = BackendSelector.Select(route, null, 0, Now, allowPanic: true);
        Assert.True(panic.Found);
        Assert.True(panic.Panic);
        Assert.False(BackendSelector.Select(route, null, 0, Now, allowPanic: false).Found);
    }

    [Fact]
    public void Ejected_backend_gives_exactly_one_trial_and_comparing_it_does_not_use_the_trial_up()
    {
        var route = Route(1, 1, 1);
        var ejected = route.Backends[0].State;
        Assert.NotNull(ejected.ReportFailure(trial: false, connectionFailure: true, () => true));
        SetLoad(route, 0, 3, 3);
        Assert.NotEqual(0, Select(route).Index);

        // Back-off over: the idle ejected backend is the least loaded, and takes exactly one trial.
        _time.Advance(TimeSpan.FromSeconds(10));
        var picks = Enumerable.Range(0, 50).Select(_ => Select(route)).ToArray();
        var trial = Assert.Single(picks, p => p.Index == 0);
        Assert.Equal(Admission.Trial, trial.Admission);

        // A second model whose comparisons pass over its ejected backend keeps that backend's trial.
        var other = Route(1, 1);
        var state = other.Backends[0].State;
        Assert.NotNull(state.ReportFailure(trial: false, connectionFailure: true, () => true));
        _time.Advance(TimeSpan.FromSeconds(10));
        SetLoad(other, 5, 0);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(1, Select(other).Index);
        }
        Assert.True(state.MayAdmit(Now));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
    }

    [Fact]
    public void A_recovering_backend_ramps_up_instead_of_drawing_every_request()
    {
        var route = Route(1, 1, 1);
        var recovering = route.Backends[0].State;
        UnitFixtures.MarkUnhealthy(recovering);
        UnitFixtures.MarkHealthy(recovering); // slow start begins now: a tenth of its weight

        // Idle but ramping at a tenth of its weight: it wins about a tenth of its draws, not all of them.
        SetLoad(route, 0, 8, 8);
        var won = Enumerable.Range(0, 1_000).Count(_ => Select(route).Index == 0);
        Assert.InRange(won, 40, 200);

        // Slow start over: full weight, and the idle backend wins at once.
        _time.Advance(TimeSpan.FromSeconds(30));
        SetLoad(route, 0, 1, 1);
        Assert.Equal(0, Select(route).Index);
    }
}
