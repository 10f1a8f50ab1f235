using System.Net;
using EdgeProxy.Configuration;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Who the client is. X-Forwarded-For is believed only when the TCP peer is a configured trusted
/// proxy; then the client is the right-most address in it that is not itself a trusted proxy.
/// </summary>
internal static class ClientAddress
{
    public static IPAddress Peer(HttpContext context)
    {
        var address = context.Connection.RemoteIpAddress ?? IPAddress.Loopback;
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    public static bool IsTrusted(IPAddress address, IReadOnlyList<IPNetwork> trusted)
    {
        for (var i = 0; i < trusted.Count; i++)
        {
            if (trusted[i].Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The client IP used for affinity and logs.</summary>
    public static IPAddress Resolve(HttpContext context, GatewaySettings settings, out bool peerTrusted)
    {
        var peer = Peer(context);
        peerTrusted = settings.TrustedProxies.Count > 0 && IsTrusted(peer, settings.TrustedProxies);
        if (!peerTrusted)
        {
            return peer;
        }
        var forwarded = context.Request.Headers["X-Forwarded-For"];
        for (var v = forwarded.Count - 1; v >= 0; v--)
        {
            if (!WalkChain(forwarded[v].AsSpan(), settings.TrustedProxies, ref peer))
            {
                return peer;
            }
        }
        return peer;
    }

    /// <summary>
    /// The client behind a trusted <paramref name="peer"/>, from one X-Forwarded-For value (the fast
    /// path allows one such field; the general path walks every one, last first).
    /// </summary>
    public static IPAddress ResolveChain(IPAddress peer, ReadOnlySpan<char> forwardedFor, IReadOnlyList<IPNetwork> trusted)
    {
        WalkChain(forwardedFor, trusted, ref peer);
        return peer;
    }

    /// <summary>Walks one value right to left; false when it ended the walk (an untrusted hop found, or garbage).</summary>
    private static bool WalkChain(ReadOnlySpan<char> value, IReadOnlyList<IPNetwork> trusted, ref IPAddress peer)
    {
        while (!value.IsEmpty)
        {
            var comma = value.LastIndexOf(',');
            var item = (comma < 0 ? value : value[(comma + 1)..]).Trim();
            value = comma < 0 ? default : value[..comma];
            if (!IPAddress.TryParse(item, out var address))
            {
                // Garbage in the chain: stop trusting it here and use what we know.
                return false;
            }
            if (address.IsIPv4MappedToIPv6)
            {
                address = address.MapToIPv4();
            }
            if (!IsTrusted(address, trusted))
            {
                peer = address;
                return false;
            }
            peer = address;
        }
        return true;
    }
}
