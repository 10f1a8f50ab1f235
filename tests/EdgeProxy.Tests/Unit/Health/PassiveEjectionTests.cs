using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Health;

/// <summary>Passive health on live traffic: ejection, growing back-off, half-open trial, per-model cap.</summary>
public sealed class PassiveEjectionTests
{
    private static readonly Func<bool> Allowed = () => true;

    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private long Now => _time.GetTimestamp();

    private BackendState NewState(HealthPolicy? policy = null)
        => new("svc", "m", UnitFixtures.Backend("b1"), policy ?? UnitFixtures.Policy(), _time);

    /// <summary>Waits out the current back-off and fails the half-open trial; returns the new back-off.</summary>
    private TimeSpan FailTrialAfter(BackendState state, TimeSpan backOff)
    {
        _time.Advance(backOff - TimeSpan.FromTicks(1));
        Assert.Equal(Admission.Refused, state.TryAdmit(Now));
        _time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        return state.ReportFailure(trial: true, connectionFailure: false, Allowed)!.Value;
    }

    [Fact]
    public void Connection_failure_ejects_at_once()
    {
        var state = NewState();
        Assert.Equal(TimeSpan.FromSeconds(10), state.ReportFailure(trial: false, connectionFailure: true, Allowed));
        Assert.True(state.IsEjected);
        Assert.Equal(1, state.Ejections);
        Assert.Equal(UnitFixtures.Epoch.AddSeconds(10), state.EjectedUntil);
        Assert.Equal(Admission.Refused, state.TryAdmit(Now));
    }

    [Fact]
    public void Server_errors_eject_only_after_the_threshold_in_a_row()
    {
        var state = NewState();
        for (var i = 1; i < 5; i++)
        {
            Assert.Null(state.ReportFailure(trial: false, connectionFailure: false, Allowed));
            Assert.False(state.IsEjected);
            Assert.Equal(Admission.Admitted, state.TryAdmit(Now));
        }
        Assert.Equal(TimeSpan.FromSeconds(10), state.ReportFailure(trial: false, connectionFailure: false, Allowed));
        Assert.True(state.IsEjected);
    }

    [Fact]
    public void A_success_resets_the_error_streak()
    {
        var state = NewState();
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 4; i++)
            {
                Assert.Null(state.ReportFailure(trial: false, connectionFailure: false, Allowed));
            }
            state.ReportSuccess(trial: false);
        }
        Assert.False(state.IsEjected);
    }

    [Fact]
    public void Ejection_is_skipped_when_the_model_cap_is_reached()
    {
        var state = NewState();
        var asked = 0;
        Assert.Null(state.ReportFailure(trial: false, connectionFailure: true, () => { asked++; return false; }));
        Assert.Equal(1, asked);
        Assert.False(state.IsEjected);
        Assert.Equal(Admission.Admitted, state.TryAdmit(Now));
    }

    [Fact]
    public void Back_off_doubles_per_failed_trial_and_is_capped()
    {
        var state = NewState();
        var backOff = state.ReportFailure(trial: false, connectionFailure: true, Allowed)!.Value;
        var seen = new List<double> { backOff.TotalSeconds };
        for (var i = 0; i < 7; i++)
        {
            backOff = FailTrialAfter(state, backOff);
            seen.Add(backOff.TotalSeconds);
        }
        Assert.Equal([10, 20, 40, 80, 160, 300, 300, 300], seen);
        Assert.Equal(8, state.Ejections);
    }

    [Fact]
    public void Back_off_respects_a_configured_base_and_cap()
    {
        var state = NewState(UnitFixtures.Policy() with { EjectionBase = TimeSpan.FromSeconds(1.5), EjectionMax = TimeSpan.FromSeconds(5) });
        var backOff = state.ReportFailure(trial: false, connectionFailure: true, Allowed)!.Value;
        Assert.Equal(TimeSpan.FromSeconds(1.5), backOff);
        backOff = FailTrialAfter(state, backOff);
        Assert.Equal(TimeSpan.FromSeconds(3), backOff);
        backOff = FailTrialAfter(state, backOff);
        Assert.Equal(TimeSpan.FromSeconds(5), backOff);
    }

    [Fact]
    public void During_back_off_everyone_is_refused_and_failures_do_not_extend_it()
    {
        var state = NewState();
        state.ReportFailure(trial: false, connectionFailure: true, Allowed);
        for (var second = 0; second < 10; second++)
        {
            Assert.Equal(Admission.Refused, state.TryAdmit(Now));
            // Late failures of requests sent before the ejection.
            Assert.Null(state.ReportFailure(trial: false, connectionFailure: true, Allowed));
            _time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        Assert.Equal(1, state.Ejections);
    }

    [Fact]
    public void After_back_off_exactly_one_concurrent_caller_gets_the_trial()
    {
        var state = NewState();
        state.ReportFailure(trial: false, connectionFailure: true, Allowed);
        _time.Advance(TimeSpan.FromSeconds(10));

        const int callers = 8;
        var results = new Admission[callers];
        using var barrier = new Barrier(callers);
        var threads = Enumerable.Range(0, callers).Select(i => new Thread(() =>
        {
            barrier.SignalAndWait();
            for (var n = 0; n < 1000; n++)
            {
                var admission = state.TryAdmit(Now);
                if (admission != Admission.Refused)
                {
                    results[i] = admission;
                }
            }
        })).ToArray();
        foreach (var t in threads)
        {
            t.Start();
        }
        foreach (var t in threads)
        {
            t.Join();
        }
        Assert.Equal(1, results.Count(r => r == Admission.Trial));
        Assert.Equal(0, results.Count(r => r == Admission.Admitted));
    }

    [Fact]
    public void Successful_trial_readmits_and_starts_slow_start()
    {
        var state = NewState();
        state.ReportFailure(trial: false, connectionFailure: true, Allowed);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        state.ReportSuccess(trial: true);

        Assert.False(state.IsEjected);
        Assert.Null(state.EjectedUntil);
        Assert.Equal(Admission.Admitted, state.TryAdmit(Now));
        Assert.Equal(Admission.Admitted, state.TryAdmit(Now));
        Assert.Equal(0.1, state.SlowStartFactor(Now), 6);
    }

    [Fact]
    public void Failed_trial_ejects_again_for_longer_and_frees_the_trial_slot()
    {
        var state = NewState();
        state.ReportFailure(trial: false, connectionFailure: true, Allowed);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        Assert.Equal(TimeSpan.FromSeconds(20), state.ReportFailure(trial: true, connectionFailure: false, () => throw new InvalidOperationException("a trial is already ejected")));
        Assert.True(state.IsEjected);
        Assert.Equal(UnitFixtures.Epoch.AddSeconds(30), state.EjectedUntil);
        Assert.Equal(Admission.Refused, state.TryAdmit(Now));
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
    }

    [Fact]
    public void Abandoned_trial_frees_the_slot_without_a_verdict()
    {
        var state = NewState();
        state.ReportFailure(trial: false, connectionFailure: true, Allowed);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        Assert.Equal(Admission.Refused, state.TryAdmit(Now));
        state.AbandonTrial();
        Assert.True(state.IsEjected);
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        Assert.Equal(1, state.Ejections);
    }

    [Fact]
    public void Back_off_starts_over_after_a_long_good_spell()
    {
        var state = NewState();
        var backOff = state.ReportFailure(trial: false, connectionFailure: true, Allowed)!.Value;
        backOff = FailTrialAfter(state, backOff);
        Assert.Equal(TimeSpan.FromSeconds(20), backOff);
        _time.Advance(backOff);
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        state.ReportSuccess(trial: true);

        // Soon after re-admission a new ejection continues the series...
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(TimeSpan.FromSeconds(40), state.ReportFailure(trial: false, connectionFailure: true, Allowed));
        _time.Advance(TimeSpan.FromSeconds(40));
        Assert.Equal(Admission.Trial, state.TryAdmit(Now));
        state.ReportSuccess(trial: true);

        // ...but after staying good for longer than twice the cap it starts from the base again.
        _time.Advance(TimeSpan.FromSeconds(601));
        Assert.Equal(TimeSpan.FromSeconds(10), state.ReportFailure(trial: false, connectionFailure: true, Allowed));
    }

    [Theory]
    [InlineData(1, 50, 1)]
    [InlineData(2, 50, 1)]
    [InlineData(3, 50, 1)]
    [InlineData(4, 50, 2)]
    [InlineData(10, 33, 3)]
    [InlineData(5, 100, 5)]
    [InlineData(4, 0, 0)]
    [InlineData(4, 10, 1)]
    public void Ejections_per_model_are_capped_at_max_ejection_percent_but_at_least_one(int backends, double percent, int cap)
    {
        var settings = new GatewaySettings { MaxEjectionPercent = percent };
        var config = UnitFixtures.Config(AffinityConfig.ClientIp, Enumerable.Range(0, backends).Select(i => ($"b{i}", 1)).ToArray());
        var route = UnitFixtures.Route(_time, config, settings: settings);
        Assert.Equal(cap, route.MaxEjected);

        var ejected = 0;
        foreach (var backend in route.Backends)
        {
            if (backend.State.ReportFailure(trial: false, connectionFailure: true, route.MayEjectAnother) is not null)
            {
                ejected++;
            }
        }
        Assert.Equal(cap, ejected);
        Assert.Equal(cap, route.Backends.Count(b => b.State.IsEjected));
        Assert.False(route.MayEjectAnother());
    }

    [Fact]
    public void A_readmitted_backend_frees_its_place_under_the_cap()
    {
        var route = UnitFixtures.Route(_time, UnitFixtures.Config(AffinityConfig.ClientIp, ("b0", 1), ("b1", 1)));
        Assert.NotNull(route.Backends[0].State.ReportFailure(false, true, route.MayEjectAnother));
        Assert.Null(route.Backends[1].State.ReportFailure(false, true, route.MayEjectAnother));

        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.Trial, route.Backends[0].State.TryAdmit(Now));
        route.Backends[0].State.ReportSuccess(trial: true);
        Assert.True(route.MayEjectAnother());
        Assert.NotNull(route.Backends[1].State.ReportFailure(false, true, route.MayEjectAnother));
    }
}
