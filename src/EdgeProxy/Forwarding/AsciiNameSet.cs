namespace EdgeProxy.Forwarding;

/// <summary>
/// Field names matched on raw bytes, ASCII case-insensitively, bucketed by length: a name is compared
/// only with the few names of its own length (decoding every name to chars for a set lookup was a
/// visible share of the fast path's time).
/// </summary>
internal sealed class AsciiNameSet
{
    private readonly byte[][][] _byLength;

    public AsciiNameSet(IEnumerable<string> names)
    {
        var all = names.Select(System.Text.Encoding.ASCII.GetBytes).ToArray();
        _byLength = new byte[all.Length == 0 ? 1 : all.Max(n => n.Length) + 1][][];
        for (var length = 0; length < _byLength.Length; length++)
        {
            _byLength[length] = all.Where(n => n.Length == length).ToArray();
        }
    }

    public bool Contains(ReadOnlySpan<byte> name)
    {
        if (name.Length >= _byLength.Length)
        {
            return false;
        }
        foreach (var candidate in _byLength[name.Length])
        {
            if (HttpAscii.EqualsIgnoreCase(name, candidate))
            {
                return true;
            }
        }
        return false;
    }
}
