using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace EdgeProxy.Balancing;

/// <summary>
/// A 64-bit hash that is the same in every process and on every machine (string.GetHashCode is
/// randomized per process), so two gateway replicas map the same client to the same backend with no
/// shared state. FNV-1a over the bytes, finished with the SplitMix64 mixer for good avalanche.
/// </summary>
internal static class StableHash
{
    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;

    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        var h = FnvOffset ^ seed;
        foreach (var b in data)
        {
            h ^= b;
            h *= FnvPrime;
        }
        return Mix(h);
    }

    public static ulong Hash(string text, ulong seed = 0)
    {
        Span<byte> buffer = text.Length <= 256 ? stackalloc byte[Encoding.UTF8.GetMaxByteCount(text.Length)] : new byte[Encoding.UTF8.GetMaxByteCount(text.Length)];
        var length = Encoding.UTF8.GetBytes(text, buffer);
        return Hash(buffer[..length], seed);
    }

    public static ulong Hash(ReadOnlySpan<char> text, ulong seed = 0)
    {
        var h = FnvOffset ^ seed;
        foreach (var c in text)
        {
            h ^= (byte)c;
            h *= FnvPrime;
            h ^= (byte)(c >> 8);
            h *= FnvPrime;
        }
        return Mix(h);
    }

    /// <summary>Hashes an IP address; IPv4-mapped IPv6 (::ffff:a.b.c.d) hashes as the IPv4 address.</summary>
    public static ulong Hash(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        Span<byte> bytes = stackalloc byte[16];
        return address.TryWriteBytes(bytes, out var written) ? Hash(bytes[..written]) : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
