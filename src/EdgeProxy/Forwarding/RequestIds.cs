using System.Buffers.Binary;
using System.Numerics;
using EdgeProxy.Balancing;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Forwarding;

/// <summary>X-Request-ID: the client's when well-formed, otherwise a new one; echoed on every response.</summary>
internal static class RequestIds
{
    public const string HeaderName = "X-Request-ID";

    public const int MaxLength = 128;

    public static string FromRequestOrNew(HttpRequest request)
    {
        var values = request.Headers[HeaderName];
        if (values.Count == 1 && IsWellFormed(values[0]))
        {
            return values[0]!;
        }
        return NewId();
    }

    /// <summary>1–128 printable ASCII characters from a conservative set (no spaces, quotes or separators that could break logs or headers).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxLength)
        {
            return false;
        }
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '/' or '+' or '=' or '@'))
            {
                return false;
            }
        }
        return true;
    }

    // A fresh id is a counter run through SplitMix64's finaliser (StableHash.Mix, a bijection) under
    // two per-process random keys: unique within the process for 2^64 ids because the
    // low half alone is a bijection of the counter, unpredictable-looking across processes because
    // the counter start and both keys are random. Guid.NewGuid() read 16 bytes from /dev/urandom
    // with a read(2) syscall on every request (one syscall in six of a proxied request in perf).
    private static readonly ulong HighKey = (ulong)Random.Shared.NextInt64() ^ ((ulong)Random.Shared.NextInt64() << 1);
    private static readonly ulong LowKey = (ulong)Random.Shared.NextInt64() ^ ((ulong)Random.Shared.NextInt64() << 1);
    private static ulong _counter = (ulong)Random.Shared.NextInt64();

    /// <summary>A fresh id: 32 lowercase hex characters, like a GUID in "N" format, not yet a string.</summary>
    public static RequestId Next()
    {
        var n = Interlocked.Increment(ref _counter);
        return new RequestId(StableHash.Mix(n ^ HighKey), StableHash.Mix(n + LowKey));
    }

    /// <summary>A fresh id as a string (<see cref="Next"/>).</summary>
    public static string NewId() => Next().ToString();
}

/// <summary>
/// One request's X-Request-ID: the client's (kept as its string) or a fresh one, held as two 64-bit
/// halves and written as 32 hex characters straight into header bytes, so a proxied request makes
/// no string for it unless a log line or an error body asks (<see cref="ToString"/>).
/// </summary>
internal readonly struct RequestId
{
    private readonly string? _text;
    private readonly ulong _high;
    private readonly ulong _low;

    public RequestId(string text) => _text = text;

    public RequestId(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    /// <summary>Characters (all ASCII) in the value.</summary>
    public int Length => _text?.Length ?? 32;

    public static implicit operator RequestId(string text) => new(text);

    /// <summary>Writes the value as ASCII; returns the bytes written (<see cref="Length"/>).</summary>
    public int CopyTo(Span<byte> destination)
    {
        if (_text is not null)
        {
            return System.Text.Encoding.ASCII.GetBytes(_text, destination);
        }
        BinaryPrimitives.WriteUInt64BigEndian(destination, HexDigits((uint)(_high >> 32)));
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], HexDigits((uint)_high));
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], HexDigits((uint)(_low >> 32)));
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], HexDigits((uint)_low));
        return 32;
    }

    /// <summary>
    /// The eight lowercase hex digits of <paramref name="value"/> as ASCII bytes, the most significant
    /// digit in the high byte (written big-endian it comes first). All eight at once, with shifts and
    /// masks: a table lookup per digit was most of writing a fresh id into a head.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static ulong HexDigits(uint value)
    {
        ulong x = value;
        x = (x | (x << 16)) & 0x0000FFFF0000FFFF;
        x = (x | (x << 8)) & 0x00FF00FF00FF00FF;
        x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F;   // one digit (0-15) per byte
        var letters = ((x + 0x0606060606060606) >> 4) & 0x0101010101010101;   // 1 in each byte holding 10-15
        return x + 0x3030303030303030 + (letters * ('a' - '0' - 10));
    }

    public override string ToString()
        => _text ?? string.Create(32, (_high, _low), static (span, id) =>
        {
            WriteHex(span, id.Item1);
            WriteHex(span[16..], id.Item2);
        });

    private static void WriteHex<T>(Span<T> destination, ulong value) where T : unmanaged, IBinaryInteger<T>
    {
        for (var i = 15; i >= 0; i--)
        {
            destination[i] = T.CreateTruncating("0123456789abcdef"[(int)(value & 0xF)]);
            value >>= 4;
        }
    }
}
