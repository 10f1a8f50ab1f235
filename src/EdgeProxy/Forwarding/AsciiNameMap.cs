namespace EdgeProxy.Forwarding;

/// <summary>
/// Field names mapped to a value, matched on raw bytes ASCII case-insensitively. A name's length,
/// first and last letters pick one slot of a table built without collisions, and one comparison
/// settles the lookup. Why: decoding each name to chars for a frozen dictionary's case-insensitive
/// lookup cost more than the rest of a small head's parse, and walking a bucket of same-length names
/// still cost twice the comparison.
/// </summary>
internal sealed class AsciiNameMap<TValue>
{
    private readonly byte[]?[] _names;
    private readonly TValue[] _values;
    private readonly uint _seed;
    private readonly int _shift;

    public AsciiNameMap(IEnumerable<KeyValuePair<string, TValue>> entries)
    {
        var all = entries.Select(e => (Name: System.Text.Encoding.ASCII.GetBytes(e.Key), e.Value)).ToArray();
        // The smallest table (and the first seed) under which no two names share a slot.
        for (var bits = 5; bits <= 12; bits++)
        {
            for (var seed = 1u; seed < 64; seed++)
            {
                var slots = all.Select(e => Slot(e.Name, seed, 32 - bits)).ToArray();
                if (slots.Distinct().Count() != slots.Length)
                {
                    continue;
                }
                (_names, _values, _seed, _shift) = (new byte[]?[1 << bits], new TValue[1 << bits], seed, 32 - bits);
                for (var i = 0; i < all.Length; i++)
                {
                    (_names[slots[i]], _values[slots[i]]) = (all[i].Name, all[i].Value);
                }
                return;
            }
        }
        throw new InvalidOperationException("The names collide in every table tried.");
    }

    /// <summary>The slot of a name: its length, first and last bytes (case folded), mixed and cut to the table's bits.</summary>
    private static int Slot(ReadOnlySpan<byte> name, uint seed, int shift)
    {
        var key = ((uint)name.Length << 16) | ((uint)(name[0] | 0x20) << 8) | (uint)(name[^1] | 0x20);
        return (int)((key * (0x9E3779B1u + (seed << 1))) >> shift);
    }

    public bool TryGetValue(ReadOnlySpan<byte> name, out TValue value)
    {
        if (!name.IsEmpty)
        {
            var slot = Slot(name, _seed, _shift);
            if (_names[slot] is { } candidate && HttpAscii.EqualsIgnoreCase(name, candidate))
            {
                value = _values[slot];
                return true;
            }
        }
        value = default!;
        return false;
    }
}
