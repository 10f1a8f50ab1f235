using EdgeProxy.Observability;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Observability;

/// <summary>The dashboard's per-backend windows: 5 s slots, a 60 s summary, 5 min of history.</summary>
public sealed class BackendStatsTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();
    private readonly BackendStats _stats;

    public BackendStatsTests() => _stats = new BackendStats(_time);

    private void Record(int count, double latencyMs = 10, bool error = false, double? firstByteMs = null)
    {
        for (var i = 0; i < count; i++)
        {
            _stats.Record(latencyMs, firstByteMs, error);
        }
    }

    [Fact]
    public void Nothing_recorded_is_all_zero_with_no_percentiles()
    {
        var s = _stats.Snapshot();
        Assert.Equal((0.0, 0.0), (s.Rps, s.ErrorRate));
        Assert.Null(s.LatencyP50Ms);
        Assert.Null(s.LatencyP99Ms);
        Assert.Null(s.FirstByteP50Ms);
        Assert.Equal(BackendStats.Slots, s.History.Count);
        Assert.All(s.History, p => Assert.Equal((0.0, 0.0, (double?)null, (bool?)null), (p.Rps, p.ErrorRate, p.LatencyP50Ms, p.Healthy)));
    }

    [Fact]
    public void Rate_and_error_rate_are_over_the_last_60_seconds()
    {
        Record(90);
        Record(30, error: true);
        var s = _stats.Snapshot();
        Assert.Equal(2.0, s.Rps);
        Assert.Equal(0.25, s.ErrorRate);
    }

    [Fact]
    public void Requests_spread_over_the_minute_all_count_and_the_oldest_slot_leaves_the_window()
    {
        for (var slot = 0; slot < 12; slot++)
        {
            if (slot > 0)
            {
                _time.Advance(TimeSpan.FromSeconds(5));
            }
            Record(10, error: slot == 0);
        }
        var full = _stats.Snapshot();
        Assert.Equal(2.0, full.Rps);
        Assert.Equal(10 / 120.0, full.ErrorRate, 12);

        // In the 13th slot the first one is 60 s old and out of the summary.
        _time.Advance(TimeSpan.FromSeconds(5));
        var later = _stats.Snapshot();
        Assert.Equal(110 / 60.0, later.Rps, 12);
        Assert.Equal(0.0, later.ErrorRate);
    }

    [Fact]
    public void History_keeps_five_minutes_oldest_first_on_slot_boundaries()
    {
        Record(5, latencyMs: 100, error: true);
        Record(5, latencyMs: 100);
        _time.Advance(TimeSpan.FromSeconds(62));
        Record(1);
        var s = _stats.Snapshot();

        Assert.Equal(60, s.History.Count);
        var now = UnitFixtures.Epoch.AddSeconds(60).ToUnixTimeSeconds();
        Assert.Equal(now, s.History[^1].UnixSeconds);
        Assert.Equal(now - 59 * 5, s.History[0].UnixSeconds);
        Assert.All(s.History.Zip(s.History.Skip(1)), pair => Assert.Equal(5, pair.Second.UnixSeconds - pair.First.UnixSeconds));

        var old = s.History.Single(p => p.UnixSeconds == UnitFixtures.Epoch.ToUnixTimeSeconds());
        Assert.Equal(2.0, old.Rps);
        Assert.Equal(0.5, old.ErrorRate);
        Assert.Equal(LatencyBuckets.Bounds[LatencyBuckets.IndexOf(100)], old.LatencyP50Ms);
        Assert.Equal(0.2, s.History[^1].Rps);

        // The 62 s old slot is in the history but not in the one-minute summary.
        Assert.Equal(1 / 60.0, s.Rps, 12);
        Assert.Equal(0.0, s.ErrorRate);
    }

    [Fact]
    public void A_slot_is_recycled_after_the_history_span_not_added_to()
    {
        Record(7, error: true);
        _time.Advance(TimeSpan.FromSeconds(BackendStats.Slots * BackendStats.SlotSeconds));
        Record(1);
        var s = _stats.Snapshot();
        Assert.Equal(0.2, s.History[^1].Rps);
        Assert.Equal(0.0, s.History[^1].ErrorRate);
        Assert.Equal(1 / 60.0, s.Rps, 12);
        Assert.Equal(1, s.History.Count(p => p.Rps > 0));
    }

    [Fact]
    public void A_stale_slot_is_not_read_back()
    {
        Record(7);
        _time.Advance(TimeSpan.FromSeconds(BackendStats.Slots * BackendStats.SlotSeconds));
        var s = _stats.Snapshot();
        Assert.Equal(0.0, s.Rps);
        Assert.All(s.History, p => Assert.Equal(0.0, p.Rps));
    }

    [Fact]
    public void Latency_and_first_byte_percentiles_cover_the_window()
    {
        Record(50, latencyMs: 10, firstByteMs: 2);
        Record(49, latencyMs: 200, firstByteMs: 2);
        Record(1, latencyMs: 30_000);
        var bounds = LatencyBuckets.Bounds;
        var s = _stats.Snapshot();
        Assert.Equal(bounds[LatencyBuckets.IndexOf(10)], s.LatencyP50Ms);
        Assert.Equal(bounds[LatencyBuckets.IndexOf(200)], s.LatencyP99Ms);
        Assert.Equal(bounds[LatencyBuckets.IndexOf(2)], s.FirstByteP50Ms);
        Assert.Equal(bounds[LatencyBuckets.IndexOf(2)], s.FirstByteP99Ms);

        // Percentiles forget latencies older than the window.
        _time.Advance(TimeSpan.FromSeconds(60));
        Record(1, latencyMs: 1);
        Assert.Equal(bounds[LatencyBuckets.IndexOf(1)], _stats.Snapshot().LatencyP99Ms);
    }

    [Fact]
    public void History_marks_slots_by_their_active_checks()
    {
        _stats.RecordCheck(passed: true);
        _time.Advance(TimeSpan.FromSeconds(5));
        _stats.RecordCheck(passed: true);
        _stats.RecordCheck(passed: false);
        _time.Advance(TimeSpan.FromSeconds(10));
        Record(1);
        var history = _stats.Snapshot().History;

        // Oldest first: ..., passed only, one failure, no check, requests but no check.
        Assert.Equal([true, false, null, null], history.Skip(56).Select(p => p.Healthy));
        Assert.All(history.Take(56), p => Assert.Null(p.Healthy));
    }

    [Fact]
    public void Concurrent_recording_in_one_slot_loses_nothing()
    {
        // The slot is claimed first: only a recycle may race with increments (by design, see BackendStats).
        Record(1);
        Parallel.For(0, 8, _ => Record(1_000));
        Assert.Equal(8_001 / 60.0, _stats.Snapshot().Rps, 9);
    }
}
