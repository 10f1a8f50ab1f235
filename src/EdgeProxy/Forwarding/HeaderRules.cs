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

    /// <summary>
    /// The `Connection` value when it names any header beyond the hop-by-hop ones (which are
    /// stripped anyway) and the `close`/`keep-alive` options; null otherwise. Almost every
    /// `Connection` header is just `keep-alive` or `close`, and this spares the per-header
    /// <see cref="IsListedInConnection"/> scan for them.
    /// </summary>
    public static string? ExtraConnectionOptions(string? connectionValue)
    {
        if (string.IsNullOrEmpty(connectionValue))
        {
            return null;
        }
        foreach (var range in connectionValue.AsSpan().Split(','))
        {
            var token = connectionValue.AsSpan(range).Trim();
            if (token.IsEmpty || token.Equals("close", StringComparison.OrdinalIgnoreCase) || token.Equals("keep-alive", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (!HopByHopLookup.Contains(token))
            {
                return connectionValue;
            }
        }
        return null;
    }

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> HopByHopLookup = HopByHop.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>True for headers named in a `Connection` header value (RFC 9110 §7.6.1: also hop-by-hop).</summary>
    public static bool IsListedInConnection(string name, string? connectionValue)
    {
        if (string.IsNullOrEmpty(connectionValue))
        {
            return false;
        }
        foreach (var range in connectionValue.AsSpan().Split(','))
        {
            if (connectionValue.AsSpan(range).Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }
}
