namespace EdgeProxy.Forwarding;

/// <summary>
/// Field names mapped to a value, matched on raw bytes ASCII case-insensitively and bucketed by
/// length, as <see cref="AsciiNameSet"/>: a name is compared only with the few names of its own
/// length. Why: decoding each name to chars for a frozen dictionary's case-insensitive lookup cost
/// more than the rest of a small head's parse.
/// </summary>
internal sealed class AsciiNameMap<TValue>
{
    private readonly byte[][][] _names;
    private readonly TValue[][] _values;

    public AsciiNameMap(IEnumerable<KeyValuePair<string, TValue>> entries)
    {
        var all = entries.Select(e => (Name: System.Text.Encoding.ASCII.GetBytes(e.Key), e.Value)).ToArray();
        var lengths = all.Length == 0 ? 1 : all.Max(e => e.Name.Length) + 1;
        _names = new byte[lengths][][];
        _values = new TValue[lengths][];
        for (var length = 0; length < lengths; length++)
        {
            _names[length] = all.Where(e => e.Name.Length == length).Select(e => e.Name).ToArray();
            _values[length] = all.Where(e => e.Name.Length == length).Select(e => e.Value).ToArray();
        }
    }

    /// <summary>A candidate whose first byte differs other than in case is passed over without a call.</summary>
    public bool TryGetValue(ReadOnlySpan<byte> name, out TValue value)
    {
        if ((uint)name.Length < (uint)_names.Length)
        {
            var names = _names[name.Length];
            for (var i = 0; i < names.Length; i++)
            {
                var candidate = names[i];
                if (((name[0] ^ candidate[0]) & ~0x20) == 0 && HttpAscii.EqualsIgnoreCase(name, candidate))
                {
                    value = _values[name.Length][i];
                    return true;
                }
            }
        }
        value = default!;
        return false;
    }
}
