namespace EdgeProxy.Balancing;

/// <summary>
/// Precomputes nginx's smooth weighted round-robin order (each step: every backend gains its weight,
/// the largest current value wins and pays back the total). Weights 5:1:1 give
/// a a b a c a a — never five in a row. Precomputing it once per snapshot makes the request path a
/// single Interlocked.Increment into this array instead of a locked update of current weights.
/// </summary>
internal static class SmoothWeightedSequence
{
    public static int[] Build(ReadOnlySpan<int> weights)
    {
        if (weights.Length == 0)
        {
            return [];
        }
        var divisor = 0;
        var total = 0;
        foreach (var w in weights)
        {
            divisor = Gcd(divisor, w);
            total += w;
        }
        total /= divisor;
        var order = new int[total];
        var current = new long[weights.Length];
        for (var step = 0; step < total; step++)
        {
            var best = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                current[i] += weights[i] / divisor;
                if (current[i] > current[best])
                {
                    best = i;
                }
            }
            current[best] -= total;
            order[step] = best;
        }
        return order;
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }
        return a;
    }
}
