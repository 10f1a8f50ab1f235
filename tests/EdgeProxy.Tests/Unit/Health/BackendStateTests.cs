using EdgeProxy.Configuration;
using EdgeProxy.Health;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Health;

/// <summary>Active health: consecutive-failure and consecutive-success thresholds on a fake clock.</summary>
public sealed class BackendStateTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();
    private readonly List<(HealthStatus Old, HealthStatus New)> _changes = [];

    private BackendState NewState(int unhealthyThreshold = 2, int healthyThreshold = 1)
    {
        var policy = UnitFixtures.Policy() with { UnhealthyThreshold = unhealthyThreshold, HealthyThreshold = healthyThreshold };
        var state = new BackendState("svc", "m", UnitFixtures.Backend("b1"), policy, _time);
        state.StatusChanged += (s, old, next) =>
        {
            Assert.Same(state, s);
            _changes.Add((old, next));
        };
        return state;
    }

    [Fact]
    public void A_new_backend_is_unknown_with_no_check_recorded()
    {
        var state = NewState();
        Assert.Equal(HealthStatus.Unknown, state.Status);
        Assert.Null(state.LastCheck);
        Assert.True(double.IsNaN(state.LastResponseMs));
        Assert.Equal(0, state.ConsecutiveFailures);
        Assert.Equal(("svc", "m", "b1"), (state.Service, state.Model, state.Config.Id));
    }

    [Fact]
    public void Unknown_until_the_thresholds_are_met()
    {
        var state = NewState(unhealthyThreshold: 2, healthyThreshold: 2);
        state.ReportCheck(false, 5);
        Assert.Equal(HealthStatus.Unknown, state.Status);
        state.ReportCheck(true, 5);
        Assert.Equal(HealthStatus.Unknown, state.Status);
        state.ReportCheck(true, 5);
        Assert.Equal(HealthStatus.Healthy, state.Status);
        Assert.Equal([(HealthStatus.Unknown, HealthStatus.Healthy)], _changes);
    }

    [Fact]
    public void First_passed_check_makes_a_backend_healthy_with_the_default_threshold()
    {
        var state = NewState();
        state.ReportCheck(true, 12.5);
        Assert.Equal(HealthStatus.Healthy, state.Status);
        Assert.Equal(12.5, state.LastResponseMs);
        Assert.Equal(UnitFixtures.Epoch, state.LastCheck);
    }

    [Fact]
    public void Failing_checks_from_unknown_reach_unhealthy_at_the_threshold()
    {
        var state = NewState(unhealthyThreshold: 3);
        state.ReportCheck(false, 1);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Unknown, state.Status);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
        Assert.Equal(3, state.ConsecutiveFailures);
        Assert.Equal([(HealthStatus.Unknown, HealthStatus.Unhealthy)], _changes);
    }

    [Fact]
    public void One_blip_does_not_flip_a_healthy_backend()
    {
        var state = NewState(unhealthyThreshold: 2);
        state.ReportCheck(true, 1);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Healthy, state.Status);
        Assert.Equal(1, state.ConsecutiveFailures);
        state.ReportCheck(true, 1);
        Assert.Equal(0, state.ConsecutiveFailures);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Healthy, state.Status);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
    }

    [Fact]
    public void Healthy_again_only_after_the_healthy_threshold_of_consecutive_successes()
    {
        var state = NewState(unhealthyThreshold: 1, healthyThreshold: 3);
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
        state.ReportCheck(true, 1);
        state.ReportCheck(true, 1);
        state.ReportCheck(false, 1);
        state.ReportCheck(true, 1);
        state.ReportCheck(true, 1);
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
        state.ReportCheck(true, 1);
        Assert.Equal(HealthStatus.Healthy, state.Status);
    }

    [Fact]
    public void Status_changed_fires_once_per_transition()
    {
        var state = NewState(unhealthyThreshold: 2, healthyThreshold: 1);
        foreach (var passed in new[] { true, true, true, false, false, false, false, true, true, false, true })
        {
            state.ReportCheck(passed, 1);
        }
        Assert.Equal(
            [
                (HealthStatus.Unknown, HealthStatus.Healthy),
                (HealthStatus.Healthy, HealthStatus.Unhealthy),
                (HealthStatus.Unhealthy, HealthStatus.Healthy),
            ],
            _changes);
    }

    [Fact]
    public void Last_check_follows_the_clock_and_a_failed_check_has_an_error_but_no_response_time()
    {
        var state = NewState();
        state.ReportCheck(true, 3);
        Assert.Equal(3, state.LastResponseMs);
        Assert.Null(state.LastError);

        _time.Advance(TimeSpan.FromSeconds(30));
        state.ReportCheck(false, 0.1, "connection refused");
        Assert.Equal(UnitFixtures.Epoch.AddSeconds(30), state.LastCheck);
        Assert.True(double.IsNaN(state.LastResponseMs));
        Assert.Equal("connection refused", state.LastError);

        state.ReportCheck(false, 5000);
        Assert.Equal("failed", state.LastError);

        _time.Advance(TimeSpan.FromSeconds(30));
        state.ReportCheck(true, 7);
        Assert.Equal((7.0, (string?)null), (state.LastResponseMs, state.LastError));
        Assert.Equal(UnitFixtures.Epoch.AddSeconds(60), state.LastCheck);
    }

    [Fact]
    public void Unhealthy_backend_refuses_admission_and_healthy_or_unknown_admit()
    {
        var state = NewState();
        Assert.Equal(Admission.Admitted, state.TryAdmit(_time.GetTimestamp()));
        state.ReportCheck(false, 1);
        state.ReportCheck(false, 1);
        Assert.Equal(Admission.Refused, state.TryAdmit(_time.GetTimestamp()));
        state.ReportCheck(true, 1);
        Assert.Equal(Admission.Admitted, state.TryAdmit(_time.GetTimestamp()));
    }

    [Fact]
    public void Updated_policy_applies_to_the_next_checks()
    {
        var state = NewState(unhealthyThreshold: 5);
        state.ReportCheck(true, 1);
        state.Update(state.Config with { Name = "renamed" }, UnitFixtures.Policy() with { UnhealthyThreshold = 1 });
        state.ReportCheck(false, 1);
        Assert.Equal(HealthStatus.Unhealthy, state.Status);
        Assert.Equal("renamed", state.Config.Name);
    }

    [Fact]
    public void Live_counters_track_requests_in_flight_and_errors()
    {
        var state = NewState();
        state.TryStart();
        state.TryStart();
        Assert.Equal(2, state.InFlight);
        state.OnRequestEnd(error: false);
        state.OnRequestEnd(error: true);
        Assert.Equal((0, 2L, 1L), (state.InFlight, state.Requests, state.Errors));
    }
}
