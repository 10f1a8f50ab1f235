using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Auth;

/// <summary>
/// Checks the client's gateway key (`Authorization: Bearer &lt;key&gt;` or `X-API-Key: &lt;key&gt;`).
/// The comparison runs in constant time: it walks every byte of the presented key against the
/// configured key (cycled), so its duration depends only on the length the client chose itself,
/// never on how much of the secret matched or on the secret's length — no prefix or length oracle.
/// Plain managed code on purpose: no OpenSSL (an HMAC here loaded libssl/libcrypto at start-up,
/// ~3 MB of RSS and several ms of start time for a byte comparison).
/// </summary>
internal sealed class GatewayKeyAuthenticator(string key)
{
    private const int MaxKeyBytes = 4096;

    private readonly byte[]? _expected = key.Length > 0 ? Encoding.UTF8.GetBytes(key) : null;

    /// <summary>False when BACKEND_API_KEY is empty: authentication is off (dev only).</summary>
    public bool Enabled => _expected is not null;

    public bool IsAuthorized(HttpRequest request)
    {
        if (_expected is null)
        {
            return true;
        }
        var authorization = request.Headers.Authorization;
        var apiKey = request.Headers["X-API-Key"];
        return IsAuthorized(authorization.Count == 1 ? authorization[0].AsSpan() : default, apiKey.Count == 1 ? apiKey[0].AsSpan() : default);
    }

    /// <summary>
    /// The rule on the two header values (empty when a header is absent or repeated): a
    /// `Bearer` credential or an X-API-Key that matches. Shared by the general path and the
    /// HTTP/1.1 fast path, which reads the values from raw bytes.
    /// </summary>
    public bool IsAuthorized(ReadOnlySpan<char> authorization, ReadOnlySpan<char> apiKey)
    {
        if (_expected is null)
        {
            return true;
        }
        var value = authorization.Trim();
        var bearer = value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase) && Matches(value[7..].Trim());
        return bearer | Matches(apiKey.Trim());
    }

    /// <summary>Constant-time check of one presented key (also used for METRICS_KEY).</summary>
    public bool Matches(ReadOnlySpan<char> presented)
    {
        if (_expected is null || presented.IsEmpty || presented.Length > MaxKeyBytes)
        {
            return false;
        }
        Span<byte> utf8 = stackalloc byte[MaxKeyBytes * 3];
        var length = Encoding.UTF8.GetBytes(presented, utf8);
        return FixedTimeMatches(utf8[..length], _expected);
    }

    /// <summary>
    /// True when <paramref name="presented"/> equals <paramref name="expected"/>. Every byte of
    /// <paramref name="presented"/> is compared (against <paramref name="expected"/> cycled) and the
    /// differences are OR-ed without branching, the length difference included; not inlined or
    /// optimised, as in CryptographicOperations.FixedTimeEquals, so the loop cannot exit early.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    internal static bool FixedTimeMatches(ReadOnlySpan<byte> presented, ReadOnlySpan<byte> expected)
    {
        var difference = presented.Length ^ expected.Length;
        var j = 0;
        for (var i = 0; i < presented.Length; i++)
        {
            difference |= presented[i] ^ expected[j];
            j++;
            // Branch-free wrap of j at expected.Length: mask is all ones while j < expected.Length.
            var mask = (j - expected.Length) >> 31;
            j &= mask;
        }
        return difference == 0;
    }
}
