using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Health;

/// <summary>A backend coming back ramps from 10% to 100% of its share over the slow-start window.</summary>
public sealed class SlowStartTests
{
    private static readonly AffinityConfig None = new(AffinityKind.None);

    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private long Now => _time.GetTimestamp();

    private void Readmit(BackendState state)
    {
        Assert.NotNull(state.ReportFailure(trial: false, connectionFailure: true, () => true));
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        state.ReportSuccess(trial: true);
    }

    [Fact]
    public void Factor_ramps_linearly_from_a_tenth_to_one_after_readmission()
    {
        var state = new BackendState("s", "m", UnitFixtures.Backend("b"), UnitFixtures.Policy(TimeSpan.FromSeconds(30)), _time);
        Assert.Equal(1.0, state.SlowStartFactor(Now));
        Readmit(state);

        var start = Now;
        var seen = new List<double>();
        foreach (var seconds in new[] { 0, 1, 3, 6, 15, 24, 29.9 })
        {
            seen.Add(state.SlowStartFactor(start + (long)(seconds * _time.TimestampFrequency)));
        }
        Assert.Equal([0.1, 0.1, 0.1, 0.2, 0.5, 0.8, 0.99667], seen.Select(f => Math.Round(f, 5)));
        Assert.Equal(1.0, state.SlowStartFactor(start + 30 * _time.TimestampFrequency));

        // Once complete it stays complete.
        Assert.Equal(1.0, state.SlowStartFactor(start + 31 * _time.TimestampFrequency));
    }

    [Fact]
    public void Factor_ramps_after_unhealthy_to_healthy_but_not_at_first_start()
    {
        var state = new BackendState("s", "m", UnitFixtures.Backend("b"), UnitFixtures.Policy(TimeSpan.FromSeconds(20)), _time);
        UnitFixtures.MarkHealthy(state);
        Assert.Equal(1.0, state.SlowStartFactor(Now));

        UnitFixtures.MarkUnhealthy(state);
        _time.Advance(TimeSpan.FromMinutes(5));
        UnitFixtures.MarkHealthy(state);
        Assert.Equal(0.1, state.SlowStartFactor(Now), 9);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0.5, state.SlowStartFactor(Now), 9);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1.0, state.SlowStartFactor(Now));
    }

    [Fact]
    public void Zero_window_disables_slow_start()
    {
        var state = new BackendState("s", "m", UnitFixtures.Backend("b"), UnitFixtures.Policy(TimeSpan.Zero), _time);
        Readmit(state);
        Assert.Equal(1.0, state.SlowStartFactor(Now));
    }

    private double ShareOfB1(ModelRoute route, int picks = 10_000)
    {
        var b1 = 0;
        for (var i = 0; i < picks; i++)
        {
            var pick = BackendSelector.Select(route, null, 0, Now, allowPanic: true);
            Assert.True(pick.Found);
            if (pick.Index == 1)
            {
                b1++;
            }
        }
        return (double)b1 / picks;
    }

    [Fact]
    public void A_ramping_backend_gets_a_reduced_share_early_and_its_full_share_after_the_window()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1), ("b1", 1));
        Readmit(route.Backends[1].State);

        // Factor 0.1: a tenth of its weight (about 5–9% of the picks, by how the turn is given away).
        var early = ShareOfB1(route);
        Assert.InRange(early, 0.02, 0.15);

        // Half-way: about half its weight.
        _time.Advance(TimeSpan.FromSeconds(15));
        var middle = ShareOfB1(route);
        Assert.InRange(middle, 0.20, 0.42);
        Assert.True(middle > early + 0.08);

        // After the window: exactly its share again (no randomness at factor 1).
        _time.Advance(TimeSpan.FromSeconds(15));
        Assert.Equal(0.5, ShareOfB1(route));
    }

    [Fact]
    public void A_lone_ramping_backend_still_serves_without_panic()
    {
        var route = UnitFixtures.Route(_time, None, ("b0", 1));
        Readmit(route.Backends[0].State);
        for (var i = 0; i < 1000; i++)
        {
            var pick = BackendSelector.Select(route, null, 0, Now, allowPanic: false);
            Assert.Equal((0, Admission.Admitted, false), (pick.Index, pick.Admission, pick.Panic));
        }
    }
}
