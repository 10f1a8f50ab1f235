using EdgeProxy.Observability;

namespace EdgeProxy.Tests.Unit.Observability;

/// <summary>Log-scale buckets (×√2 from 50 µs) and the quantile estimate the dashboard shows.</summary>
public sealed class LatencyBucketsTests
{
    [Fact]
    public void Bounds_grow_by_the_square_root_of_two_from_50_microseconds()
    {
        var bounds = LatencyBuckets.Bounds;
        Assert.Equal(LatencyBuckets.Count, bounds.Length);
        Assert.Equal(0.05, bounds[0], 12);
        for (var i = 1; i < bounds.Length; i++)
        {
            Assert.Equal(Math.Sqrt(2), bounds[i] / bounds[i - 1], 9);
        }
        // About ten minutes at the top.
        Assert.InRange(bounds[^1], 9 * 60_000, 10 * 60_000);
    }

    [Theory]
    [InlineData(0.0, 0)]
    [InlineData(-5.0, 0)]
    [InlineData(double.NaN, 0)]
    [InlineData(0.05, 0)]
    [InlineData(0.0500001, 1)]
    [InlineData(0.1, 2)]
    [InlineData(1.0, 9)]
    [InlineData(100.0, 22)]
    [InlineData(1e9, 47)]
    [InlineData(double.PositiveInfinity, 47)]
    public void Index_of_known_values(double ms, int index) => Assert.Equal(index, LatencyBuckets.IndexOf(ms));

    [Fact]
    public void Every_value_falls_in_the_bucket_whose_bound_covers_it()
    {
        var random = new Random(11);
        var bounds = LatencyBuckets.Bounds;
        for (var n = 0; n < 100_000; n++)
        {
            var ms = Math.Exp(random.NextDouble() * Math.Log(bounds[^1] / 0.05)) * 0.05;
            var i = LatencyBuckets.IndexOf(ms);
            Assert.True(ms <= bounds[i] * (1 + 1e-12), $"{ms} above bound {bounds[i]}");
            Assert.True(i == 0 || ms > bounds[i - 1] * (1 - 1e-12), $"{ms} not above previous bound {bounds[i - 1]}");
        }
    }

    [Fact]
    public void Quantile_of_nothing_is_null() => Assert.Null(LatencyBuckets.Quantile(new long[LatencyBuckets.Count], 0.5));

    [Fact]
    public void Quantiles_are_the_upper_bound_of_the_bucket_holding_the_rank()
    {
        var counts = new long[LatencyBuckets.Count];
        counts[LatencyBuckets.IndexOf(10)] = 50;
        counts[LatencyBuckets.IndexOf(200)] = 49;
        counts[LatencyBuckets.IndexOf(30_000)] = 1;
        var bounds = LatencyBuckets.Bounds;

        Assert.Equal(bounds[LatencyBuckets.IndexOf(10)], LatencyBuckets.Quantile(counts, 0.5));
        Assert.Equal(bounds[LatencyBuckets.IndexOf(200)], LatencyBuckets.Quantile(counts, 0.51));
        Assert.Equal(bounds[LatencyBuckets.IndexOf(200)], LatencyBuckets.Quantile(counts, 0.99));
        Assert.Equal(bounds[LatencyBuckets.IndexOf(30_000)], LatencyBuckets.Quantile(counts, 0.999));
        Assert.Equal(bounds[LatencyBuckets.IndexOf(30_000)], LatencyBuckets.Quantile(counts, 1.0));
    }

    [Fact]
    public void Quantile_estimate_is_within_the_bucket_resolution()
    {
        var random = new Random(5);
        var counts = new long[LatencyBuckets.Count];
        var values = new double[10_000];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = 20 + random.NextDouble() * 480;
            counts[LatencyBuckets.IndexOf(values[i])]++;
        }
        Array.Sort(values);
        foreach (var q in new[] { 0.5, 0.9, 0.99 })
        {
            var exact = values[(int)Math.Ceiling(q * values.Length) - 1];
            var estimate = LatencyBuckets.Quantile(counts, q)!.Value;
            Assert.InRange(estimate, exact, exact * Math.Sqrt(2));
        }
    }
}
