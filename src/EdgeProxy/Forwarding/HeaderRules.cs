using System.Collections.Frozen;

namespace EdgeProxy.Forwarding;

/// <summary>Header names the forwarder treats specially, as frozen sets checked per header.</summary>
internal static class HeaderRules
{
    /// <summary>
    /// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only and never forwarded in
    /// either direction; `Proxy-Connection` is the legacy spelling still sent by some clients.
    /// `TE` is handled separately: `TE: trailers` is end-to-end meaningful (gRPC) and kept.
    /// </summary>
    public static readonly FrozenSet<string> HopByHop = FrozenSet.ToFrozenSet(
    [
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    ], StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Request headers the gateway never passes through as sent: client credentials (replaced by
    /// the backend's own key), forwarding headers (recomputed so they cannot be spoofed), Host
    /// (the backend's own), Expect (the gateway runs 100-continue itself) and the request id.
    /// </summary>
    public static readonly FrozenSet<string> RequestReplaced = FrozenSet.ToFrozenSet(
    [
        "Host", "Authorization", "X-API-Key", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
        "X-Real-IP", "Forwarded", "X-Request-ID", "Expect", "Content-Length",
    ], StringComparer.OrdinalIgnoreCase);

    /// <summary>Response headers the gateway sets itself (request id) or must not relay.</summary>
    public static readonly FrozenSet<string> ResponseReplaced = FrozenSet.ToFrozenSet(
    [
        "X-Request-ID", "Server",
    ], StringComparer.OrdinalIgnoreCase);

    /// <summary><see cref="HopByHop"/> for names as raw bytes.</summary>
    private static readonly AsciiNameSet HopByHopNames = new(HopByHop);

    /// <summary>
    /// The one reader of a Connection field value (RFC 9110 §7.6.1), for requests and responses on
    /// both paths: comma-separated tokens, OWS around each, empty elements skipped (§5.6.1),
    /// compared case-insensitively. Names of hop-by-hop fields do not count as
    /// <see cref="ConnectionTokens.NamesFields"/>: those fields are never relayed anyway, so the
    /// common `Connection: keep-alive` / `close` / `Upgrade` spares the per-field scan.
    /// </summary>
    public static ConnectionTokens ReadConnection(ReadOnlySpan<byte> value)
    {
        // Element by element: a split enumerator cost more than the whole read of the usual one-token value.
        var tokens = ConnectionTokens.None;
        for (var rest = value; ;)
        {
            var comma = rest.IndexOf((byte)',');
            tokens |= TokenOf(HttpAscii.TrimOws(comma < 0 ? rest : rest[..comma]));
            if (comma < 0)
            {
                return tokens;
            }
            rest = rest[(comma + 1)..];
        }
    }

    private static ConnectionTokens TokenOf(ReadOnlySpan<byte> token)
        => token.IsEmpty ? ConnectionTokens.None
            : HttpAscii.EqualsIgnoreCase(token, "close"u8) ? ConnectionTokens.Close
            : HttpAscii.EqualsIgnoreCase(token, "keep-alive"u8) ? ConnectionTokens.KeepAlive
            : HopByHopNames.Contains(token) ? ConnectionTokens.None
            : ConnectionTokens.NamesFields;

    /// <summary>True when the Connection field value names <paramref name="fieldName"/> (then it is hop-by-hop and not relayed).</summary>
    public static bool NamedByConnection(ReadOnlySpan<byte> connectionValue, ReadOnlySpan<byte> fieldName)
    {
        foreach (var range in connectionValue.Split((byte)','))
        {
            if (HttpAscii.EqualsIgnoreCase(HttpAscii.TrimOws(connectionValue[range]), fieldName))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The general path's Connection values (as the HTTP libraries decoded them, joined with commas)
    /// when they name a field; null otherwise, so the usual value costs no per-field check.
    /// </summary>
    public static string? ConnectionNamingFields(string? connectionValues)
    {
        if (string.IsNullOrEmpty(connectionValues))
        {
            return null;
        }
        using var bytes = new WireBytes(connectionValues, stackalloc byte[256]);
        return bytes.Valid && (ReadConnection(bytes.Span) & ConnectionTokens.NamesFields) != 0 ? connectionValues : null;
    }

    /// <summary><see cref="NamedByConnection(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> on the general path's strings.</summary>
    public static bool NamedByConnection(string connectionValues, string fieldName)
    {
        using var value = new WireBytes(connectionValues, stackalloc byte[256]);
        using var name = new WireBytes(fieldName, stackalloc byte[128]);
        return value.Valid && name.Valid && NamedByConnection(value.Span, name.Span);
    }
}
