using System.IO.Pipelines;
using System.Net;
using System.Text;
using EdgeProxy.Auth;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The HTTP/1.1 proxy fast path: a Kestrel connection middleware in front of Kestrel's
/// HTTP stack. For each request on a connection it reads the head straight off the transport and,
/// when the request is a plain authorised proxy request to a model whose backends are all plain
/// http, relays it itself — request head written once into the upstream connection's buffer, body
/// and response copied between the two sockets — with no HttpContext, no header dictionaries and
/// no HttpRequestMessage/HttpResponseMessage. Anything else (dashboard, health, metrics, CORS,
/// errors the dispatcher words, unusual HTTP) is handed, unconsumed, to Kestrel together with the
/// rest of the connection, so every behaviour outside the hot path stays Kestrel's and
/// <see cref="Hosting.RequestDispatcher"/>'s. HTTP1_FAST_PATH=off turns it off.
/// Why: Kestrel's HTTP object model and HttpClient cost far more CPU per request than the relay
/// itself (bench/README.md, "The design, and why", has the figures).
/// </summary>
internal sealed partial class Http1FastPath(
    GatewaySettings settings,
    RouteTableProvider routes,
    GatewayKeyAuthenticator authenticator,
    HttpForwarder forwarder,
    ILogger<Http1FastPath> logger)
{
    /// <summary>Kestrel's defaults (KestrelServerLimits.KeepAliveTimeout / RequestHeadersTimeout), applied here while the fast path owns the connection.</summary>
    internal static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(130);

    internal static readonly TimeSpan RequestHeadersTimeout = TimeSpan.FromSeconds(30);

    /// <summary>GET/HEAD paths the dispatcher serves itself; a proxy route never starts with them.</summary>
    private static ReadOnlySpan<byte> ApiPrefix => "/api/"u8;

    public ConnectionDelegate Wrap(ConnectionDelegate next) => connection => RunAsync(connection, next);

    private async Task RunAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        var peer = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        // Behind TLS the connection reads decrypted bytes; one that negotiated h2 (ALPN) is Kestrel's HTTP/2.
        var tls = connection.Features.Get<ITlsApplicationProtocolFeature>();
        if (peer is null || IsOtherThanHttp1(tls))
        {
            await next(connection).ConfigureAwait(false);
            return;
        }
        peer = Normalize(peer);
        bool handOver;
        var exchange = new Http1Exchange(connection, peer, settings.TrustedProxies.Count > 0 && ClientAddress.IsTrusted(peer, settings.TrustedProxies), this, forwarder.ShutdownDeadline, https: tls is not null);
        try
        {
            handOver = await forwarder.ServeHttp1Async(exchange).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or ConnectionAbortedException)
        {
            return;
        }
        catch (Exception ex)
        {
            LogConnectionFailed(logger, ex.GetType().Name, ex.Message);
            connection.Abort();
            return;
        }
        finally
        {
            exchange.Dispose();
        }
        if (handOver)
        {
            await next(connection).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The route when the request is a proxy request the fast path relays: not a dispatcher
    /// endpoint, a well-formed route, authorised, with only plain-http backends, no header-based
    /// affinity, and no body to read ahead for prefix affinity (which the general path does: an LLM
    /// request's cost dwarfs the difference). Null sends it to Kestrel, which answers errors in the usual words.
    /// </summary>
    internal ModelRoute? Admit(Http1RequestHead head)
    {
        if (head.ContentLength > settings.MaxRequestBodySize)
        {
            return null;   // Kestrel's 413
        }
        var target = head.Target;
        if (target.StartsWith(ApiPrefix) || target.Length > 2048)
        {
            return null;
        }
        Span<char> chars = stackalloc char[target.Length];
        Encoding.ASCII.GetChars(target, chars);
        if (!GatewayPath.TryParse(chars, out var path) || path.Service.Contains('%') || path.Model.Contains('%')
            || GatewayPath.HasDotSegment(path.Remainder) || !IsAuthorized(head))
        {
            return null;
        }
        if (!routes.Current.TryGetModel(path.Service, path.Model, out var route) || route.AffinityConfig.Kind == AffinityKind.Header
            || (route.AffinityConfig.Kind == AffinityKind.Prefix && head.ContentLength > 0))
        {
            return null;
        }
        head.RemainderOffset = target.Length - path.Remainder.Length;
        foreach (var backend in route.Backends)
        {
            if (backend.Http1 is null)
            {
                return null;
            }
        }
        return route;
    }

    /// <summary><see cref="GatewayKeyAuthenticator"/>'s rule on the raw header values (a value too long for the stack buffer goes to the general path).</summary>
    private bool IsAuthorized(Http1RequestHead head)
    {
        if (!authenticator.Enabled)
        {
            return true;
        }
        Span<char> authorization = stackalloc char[512];
        Span<char> apiKey = stackalloc char[512];
        return ToChars(head, head.Authorization, ref authorization) && ToChars(head, head.ApiKey, ref apiKey)
            && authenticator.IsAuthorized(authorization, apiKey);
    }

    /// <summary>A field's value as chars in <paramref name="chars"/> (empty when the field is absent); false when it does not fit.</summary>
    private static bool ToChars(Http1RequestHead head, int field, ref Span<char> chars)
    {
        if (field < 0)
        {
            chars = default;
            return true;
        }
        var value = head.Value(field);
        if (value.Length > chars.Length)
        {
            return false;
        }
        chars = chars[..Encoding.ASCII.GetChars(value, chars)];
        return true;
    }

    /// <summary>ALPN chose a protocol other than HTTP/1.1 (h2); no ALPN at all means HTTP/1.1 (RFC 7301 §3.2).</summary>
    private static bool IsOtherThanHttp1(ITlsApplicationProtocolFeature? tls)
        => tls is not null && !tls.ApplicationProtocol.IsEmpty && !tls.ApplicationProtocol.Span.SequenceEqual("http/1.1"u8);

    private static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    [ZLogger.ZLoggerMessage(LogLevel.Warning, "fast path: connection failed ({exceptionType}: {detail})")]
    private static partial void LogConnectionFailed(ILogger logger, string exceptionType, string detail);
}
