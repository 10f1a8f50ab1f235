using EdgeProxy.Balancing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>
/// The precomputed order must be exactly nginx's smooth weighted round-robin
/// (ngx_http_upstream_get_peer), re-implemented here independently, repeated cycle after cycle.
/// </summary>
public sealed class SmoothWeightedSequenceTests
{
    /// <summary>nginx: every peer gains its weight; the first peer with the largest current weight wins and pays back the total.</summary>
    private static int[] Nginx(int[] weights, int picks)
    {
        var current = new long[weights.Length];
        var total = weights.Sum();
        var order = new int[picks];
        for (var p = 0; p < picks; p++)
        {
            var best = -1;
            for (var i = 0; i < weights.Length; i++)
            {
                current[i] += weights[i];
                if (best == -1 || current[i] > current[best])
                {
                    best = i;
                }
            }
            current[best] -= total;
            order[p] = best;
        }
        return order;
    }

    /// <summary>What the request path sees: the precomputed cycle read with an ever-increasing cursor.</summary>
    private static int[] Served(int[] sequence, int picks) => Enumerable.Range(0, picks).Select(p => sequence[p % sequence.Length]).ToArray();

    private static int LongestRun(int[] picks, int backend)
    {
        int longest = 0, run = 0;
        foreach (var p in picks)
        {
            run = p == backend ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }
        return longest;
    }

    [Fact]
    public void Weights_5_1_1_give_the_smooth_order()
    {
        var sequence = SmoothWeightedSequence.Build([5, 1, 1]);
        Assert.Equal([0, 0, 1, 0, 2, 0, 0], sequence);
        Assert.Equal(Nginx([5, 1, 1], 7), sequence);
    }

    [Fact]
    public void Weights_5_1_1_never_send_more_in_a_row_than_nginx_and_never_five()
    {
        var served = Served(SmoothWeightedSequence.Build([5, 1, 1]), 7_000);
        var nginx = Nginx([5, 1, 1], 7_000);
        Assert.Equal(nginx, served);

        // Within one cycle the heavy backend gets at most two in a row (a a b a c a a); across the
        // cycle boundary nginx's scheme itself yields a a | a a, so four is what it allows. Five (the
        // plain weighted round-robin a a a a a b c) must never happen.
        Assert.Equal(2, LongestRun(SmoothWeightedSequence.Build([5, 1, 1]), 0));
        Assert.Equal(LongestRun(nginx, 0), LongestRun(served, 0));
        Assert.Equal(4, LongestRun(served, 0));
        Assert.Equal(1, LongestRun(served, 1));
        Assert.Equal(1, LongestRun(served, 2));
    }

    public static TheoryData<int[]> WeightSets => new()
    {
        new[] { 1 },
        new[] { 7 },
        new[] { 1, 1, 1 },
        new[] { 5, 1, 1 },
        new[] { 2, 3 },
        new[] { 10, 2, 2 },
        new[] { 3, 6, 9 },
        new[] { 1000, 1 },
        new[] { 4, 4, 4, 4 },
        new[] { 1, 2, 3, 4, 5, 6, 7 },
        new[] { 997, 991, 983 },
    };

    [Theory]
    [MemberData(nameof(WeightSets))]
    public void Every_cycle_has_exact_proportions_and_matches_nginx(int[] weights)
    {
        var sequence = SmoothWeightedSequence.Build(weights);
        var gcd = weights.Aggregate(0, (a, b) => (int)System.Numerics.BigInteger.GreatestCommonDivisor(a, b));

        // gcd reduction: one cycle is sum(w)/gcd long, each backend appears w/gcd times.
        Assert.Equal(weights.Sum() / gcd, sequence.Length);
        for (var i = 0; i < weights.Length; i++)
        {
            Assert.Equal(weights[i] / gcd, sequence.Count(x => x == i));
        }

        // nginx run on the unreduced weights for a whole of its own period is the reduced cycle repeated.
        Assert.Equal(Nginx(weights, weights.Sum()), Served(sequence, weights.Sum()));
    }

    [Fact]
    public void Scaled_weights_give_the_same_cycle()
    {
        Assert.Equal(SmoothWeightedSequence.Build([5, 1, 1]), SmoothWeightedSequence.Build([10, 2, 2]));
        Assert.Equal(SmoothWeightedSequence.Build([1, 1]), SmoothWeightedSequence.Build([500, 500]));
        Assert.Equal([0, 1], SmoothWeightedSequence.Build([3, 3]));
    }

    [Fact]
    public void Any_window_of_one_cycle_length_has_exact_proportions()
    {
        int[] weights = [5, 2, 1];
        var sequence = SmoothWeightedSequence.Build(weights);
        var served = Served(sequence, sequence.Length * 5);
        for (var start = 0; start + sequence.Length <= served.Length; start++)
        {
            var window = served.AsSpan(start, sequence.Length).ToArray();
            for (var i = 0; i < weights.Length; i++)
            {
                Assert.Equal(weights[i], window.Count(x => x == i));
            }
        }
    }

    [Fact]
    public void No_backends_gives_an_empty_sequence() => Assert.Empty(SmoothWeightedSequence.Build([]));
}
