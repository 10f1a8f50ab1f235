using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The byte-level helpers the fast path's head parsing and writing call for every field. The
/// general-purpose library calls they replace (a two-byte substring search, a set-based trim, the
/// vectorised case-insensitive compare) pay a setup cost per call that, on heads of short lines,
/// outweighed the work (bench/instructions.sh shows it).
/// </summary>
internal static class HttpAscii
{
    /// <summary>The index of the first CRLF, or -1 (a single-byte vectorised search for LF).</summary>
    public static int IndexOfCrlf(ReadOnlySpan<byte> span)
    {
        var offset = 0;
        while (true)
        {
            var lf = span[offset..].IndexOf((byte)'\n');
            if (lf < 0)
            {
                return -1;
            }
            var at = offset + lf;
            if (at > 0 && span[at - 1] == (byte)'\r')
            {
                return at - 1;
            }
            offset = at + 1;
        }
    }

    /// <summary>Optional whitespace (SP, HTAB) removed from both ends (RFC 9110 §5.6.3).</summary>
    public static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> value) => TrimOws(value, out _);

    /// <summary><see cref="TrimOws(ReadOnlySpan{byte})"/>, also telling how many bytes came off the front.</summary>
    public static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> value, out int leading)
    {
        // A byte above SP is never OWS: one compare settles most bytes (and most values have none at the end).
        var start = 0;
        var end = value.Length;
        while (start < end && value[start] <= (byte)' ' && value[start] is (byte)' ' or (byte)'\t')
        {
            start++;
        }
        while (end > start && value[end - 1] <= (byte)' ' && value[end - 1] is (byte)' ' or (byte)'\t')
        {
            end--;
        }
        leading = start;
        return value[start..end];
    }

    /// <summary>
    /// ASCII case-insensitive equality; bytes that differ must be the same letter in the other case.
    /// Names mostly come in the usual spelling, so the bytes are first compared as they are, a word at
    /// a time: a byte-at-a-time loop over a whole matching name was most of a field lookup.
    /// </summary>
    public static bool EqualsIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> other)
    {
        if (value.Length != other.Length)
        {
            return false;
        }
        if (SameBytes(value, other))
        {
            return true;
        }
        for (var i = 0; i < value.Length; i++)
        {
            var a = value[i];
            var b = other[i];
            if (a != b)
            {
                var lower = a | 0x20;
                if (lower != (b | 0x20) || (uint)(lower - 'a') > 'z' - 'a')
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>Byte-for-byte equality of two spans of one length: eight or four bytes a compare, the last word overlapping the one before.</summary>
    private static bool SameBytes(ReadOnlySpan<byte> value, ReadOnlySpan<byte> other)
    {
        var length = value.Length;
        ref var a = ref MemoryMarshal.GetReference(value);
        ref var b = ref MemoryMarshal.GetReference(other);
        if (length >= sizeof(ulong))
        {
            for (var i = 0; i < length - sizeof(ulong); i += sizeof(ulong))
            {
                if (Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, i)) != Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, i)))
                {
                    return false;
                }
            }
            var last = length - sizeof(ulong);
            return Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, last)) == Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, last));
        }
        if (length >= sizeof(uint))
        {
            var last = length - sizeof(uint);
            return Unsafe.ReadUnaligned<uint>(ref a) == Unsafe.ReadUnaligned<uint>(ref b)
                && Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref a, last)) == Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, last));
        }
        for (var i = 0; i < length; i++)
        {
            if (Unsafe.Add(ref a, i) != Unsafe.Add(ref b, i))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True when <paramref name="value"/> contains <paramref name="lowerWord"/> (lower-case letters) in any case.</summary>
    public static bool ContainsIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> lowerWord)
    {
        var first = lowerWord[0];
        for (var at = value.IndexOfAny(first, (byte)(first & ~0x20)); at >= 0 && at + lowerWord.Length <= value.Length;)
        {
            if (EqualsIgnoreCase(value.Slice(at, lowerWord.Length), lowerWord))
            {
                return true;
            }
            var next = value[(at + 1)..].IndexOfAny(first, (byte)(first & ~0x20));
            at = next < 0 ? -1 : at + 1 + next;
        }
        return false;
    }
}
