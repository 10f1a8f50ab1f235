namespace EdgeProxy.Observability;

/// <summary>
/// Log-scale latency buckets shared by the dashboard windows: bucket i covers up to
/// 0.05 ms * sqrt(2)^i, so 48 buckets span 50 µs to about 10 minutes at ±20% resolution.
/// </summary>
internal static class LatencyBuckets
{
    public const int Count = 48;

    private const double First = 0.05;

    private static readonly double[] UpperBounds = Enumerable.Range(0, Count).Select(i => First * Math.Pow(Math.Sqrt(2), i)).ToArray();

    public static ReadOnlySpan<double> Bounds => UpperBounds;

    public static int IndexOf(double milliseconds)
    {
        if (!(milliseconds > First))
        {
            return 0;
        }
        // log_sqrt2(ms / First) = 2 * log2(ms / First)
        var index = (int)Math.Ceiling(2 * Math.Log2(milliseconds / First));
        return Math.Clamp(index, 0, Count - 1);
    }

    /// <summary>Quantile estimate from bucket counts (upper bound of the bucket holding the rank).</summary>
    public static double? Quantile(ReadOnlySpan<long> counts, double q)
    {
        long total = 0;
        foreach (var c in counts)
        {
            total += c;
        }
        if (total == 0)
        {
            return null;
        }
        var rank = (long)Math.Ceiling(q * total);
        long seen = 0;
        for (var i = 0; i < counts.Length; i++)
        {
            seen += counts[i];
            if (seen >= rank)
            {
                return UpperBounds[i];
            }
        }
        return UpperBounds[^1];
    }
}
