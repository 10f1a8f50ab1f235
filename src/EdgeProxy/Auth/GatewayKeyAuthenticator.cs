using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Auth;

/// <summary>
/// Checks the client's gateway key (`Authorization: Bearer &lt;key&gt;` or `X-API-Key: &lt;key&gt;`).
/// Both sides are reduced to HMAC-SHA256 digests under a per-process random key and compared with
/// FixedTimeEquals, so the comparison takes the same time whatever the presented key's length or
/// content — no length or prefix oracle.
/// </summary>
internal sealed class GatewayKeyAuthenticator
{
    private const int MaxKeyBytes = 4096;

    private readonly byte[] _hmacKey = RandomNumberGenerator.GetBytes(32);
    private readonly byte[]? _expected;

    public GatewayKeyAuthenticator(string key)
    {
        if (key.Length > 0)
        {
            _expected = Digest(key);
        }
    }

    /// <summary>False when BACKEND_API_KEY is empty: authentication is off (dev only).</summary>
    public bool Enabled => _expected is not null;

    public bool IsAuthorized(HttpRequest request)
    {
        if (_expected is null)
        {
            return true;
        }
        var authorized = false;
        var authorization = request.Headers.Authorization;
        if (authorization.Count == 1)
        {
            var value = authorization[0].AsSpan().Trim();
            if (value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                authorized |= Matches(value[7..].Trim());
            }
        }
        var apiKey = request.Headers["X-API-Key"];
        if (apiKey.Count == 1)
        {
            authorized |= Matches(apiKey[0].AsSpan().Trim());
        }
        return authorized;
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
        Span<byte> digest = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_hmacKey, utf8[..length], digest);
        return CryptographicOperations.FixedTimeEquals(digest, _expected);
    }

    private byte[] Digest(string key) => HMACSHA256.HashData(_hmacKey, Encoding.UTF8.GetBytes(key));
}
