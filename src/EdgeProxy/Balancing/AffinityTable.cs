namespace EdgeProxy.Balancing;

/// <summary>
/// A Maglev lookup table (Eisenbud et al., NSDI 2016) with weights: a fixed-size array of backend
/// indices filled from per-backend permutations seeded by the backend id. Lookup is one hash and one
/// array read; memory is bounded by the table size whatever the number of clients; two processes
/// built from the same config produce the same table; adding or removing one of N backends moves
/// about 1/N of the keys; each backend owns table slots in proportion to its weight.
/// </summary>
internal sealed class AffinityTable
{
    // Prime sizes; Maglev wants M much larger than N for even spread (M >= 100 N).
    private static readonly int[] Sizes = [1021, 4099, 8191];

    private readonly byte[] _slots;

    private AffinityTable(byte[] slots) => _slots = slots;

    public int Size => _slots.Length;

    public int Lookup(ulong keyHash) => _slots[(int)(keyHash % (ulong)_slots.Length)];

    /// <summary>Builds the table for backends identified by stable ids with the given weights.</summary>
    public static AffinityTable Build(ReadOnlySpan<string> ids, ReadOnlySpan<int> weights)
    {
        var n = ids.Length;
        if (n == 0 || n > byte.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(ids), "1..255 backends");
        }
        var size = Sizes[^1];
        foreach (var s in Sizes)
        {
            if (s >= 100 * n)
            {
                size = s;
                break;
            }
        }

        // Target share of slots per backend (largest-remainder rounding of size * w / W).
        long totalWeight = 0;
        foreach (var w in weights)
        {
            totalWeight += w;
        }
        var target = new int[n];
        var assigned = 0;
        var remainders = new (double Fraction, int Index)[n];
        for (var i = 0; i < n; i++)
        {
            var exact = (double)size * weights[i] / totalWeight;
            target[i] = (int)exact;
            assigned += target[i];
            remainders[i] = (exact - target[i], i);
        }
        Array.Sort(remainders, (a, b) => b.Fraction != a.Fraction ? b.Fraction.CompareTo(a.Fraction) : a.Index.CompareTo(b.Index));
        for (var k = 0; assigned < size; k++, assigned++)
        {
            target[remainders[k % n].Index]++;
        }

        var offset = new ulong[n];
        var skip = new ulong[n];
        var next = new ulong[n];
        var placed = new int[n];
        for (var i = 0; i < n; i++)
        {
            offset[i] = StableHash.Hash(ids[i], 0x6d61676c6576UL) % (ulong)size;
            skip[i] = StableHash.Hash(ids[i], 0x736b6970UL) % (ulong)(size - 1) + 1;
        }

        var slots = new byte[size];
        var filled = new bool[size];
        var count = 0;
        while (count < size)
        {
            for (var i = 0; i < n && count < size; i++)
            {
                if (placed[i] >= target[i])
                {
                    continue;
                }
                // Next preferred free slot in backend i's permutation.
                ulong c;
                do
                {
                    c = (offset[i] + next[i] * skip[i]) % (ulong)size;
                    next[i]++;
                }
                while (filled[c]);
                filled[c] = true;
                slots[c] = (byte)i;
                placed[i]++;
                count++;
            }
        }
        return new AffinityTable(slots);
    }
}
