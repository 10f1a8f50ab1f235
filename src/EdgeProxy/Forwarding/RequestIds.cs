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

    /// <summary>32 lowercase hex characters, like a GUID in "N" format.</summary>
    public static string NewId()
    {
        var n = Interlocked.Increment(ref _counter);
        return string.Create(32, (High: StableHash.Mix(n ^ HighKey), Low: StableHash.Mix(n + LowKey)), static (span, id) =>
        {
            WriteHex(span, id.High);
            WriteHex(span[16..], id.Low);
        });
    }

    private static void WriteHex(Span<char> destination, ulong value)
    {
        for (var i = 15; i >= 0; i--)
        {
            destination[i] = "0123456789abcdef"[(int)(value & 0xF)];
            value >>= 4;
        }
    }
}
