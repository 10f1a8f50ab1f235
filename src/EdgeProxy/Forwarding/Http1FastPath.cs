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
        var exchange = new Http1Exchange(connection, peer, settings.TrustedProxies.Count > 0 && ClientAddress.IsTrusted(peer, settings.TrustedProxies), forwarder.ShutdownDeadline, https: tls is not null);
        try
        {
            handOver = await forwarder.ServeHttp1Async(exchange, this).ConfigureAwait(false);
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
    /// endpoint, a well-formed route, authorised, with only plain-http backends and no
    /// header-based affinity. Null sends it to Kestrel, which answers errors in the usual words.
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
        if (!routes.Current.TryGetModel(path.Service, path.Model, out var route) || route.AffinityConfig.Kind == AffinityKind.Header)
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

/// <summary>The client side of the fast path's exchanges on one connection.</summary>
/// <param name="shutdownDeadline">The end of a shutdown's drain (<see cref="ShutdownDrain.Deadline"/>): it cancels the exchange in flight like the client leaving does.</param>
internal sealed class Http1Exchange(ConnectionContext connection, IPAddress peer, bool peerTrusted, CancellationToken shutdownDeadline = default, bool https = false) : IDisposable
{
    /// <summary>The client connection is TLS (X-Forwarded-Proto: https).</summary>
    public bool Https { get; } = https;

    /// <summary>The peer is a configured trusted proxy: its X-Forwarded-* fields are believed (<see cref="ClientAddress"/>).</summary>
    public bool PeerTrusted { get; } = peerTrusted;

    private CancellationTokenSource? _timeouts;

    /// <summary>
    /// The request's timer source, linked to the client connection closing and to the shutdown deadline: one per connection,
    /// reset between requests (a fresh linked source per request cost an allocation, a
    /// registration on the connection's token and its removal, every time).
    /// </summary>
    public CancellationTokenSource RentTimeouts()
    {
        var timeouts = _timeouts ?? CancellationTokenSource.CreateLinkedTokenSource(Connection.ConnectionClosed, shutdownDeadline);
        _timeouts = null;
        return timeouts;
    }

    /// <summary>Back for the next request unless it fired (a cancelled source cannot be reset).</summary>
    public void ReturnTimeouts(CancellationTokenSource timeouts)
    {
        if (timeouts.TryReset())
        {
            _timeouts = timeouts;
        }
        else
        {
            timeouts.Dispose();
        }
    }

    private Observability.UsageScanner? _usage;

    /// <summary>The connection's usage scanner, reset for the request that asks (one request at a time per connection).</summary>
    public Observability.UsageScanner ResetUsage()
    {
        var usage = _usage ??= new Observability.UsageScanner();
        usage.Reset();
        return usage;
    }

    /// <summary>The current request's head (its buffer is rented per request).</summary>
    public Http1RequestHead Head { get; } = new();

    /// <summary>The current response's body reader (<see cref="Http1ResponseStream.Begin"/> per response).</summary>
    public Http1ResponseStream ResponseBody { get; } = new();

    public void Dispose()
    {
        _timeouts?.Dispose();
        Head.Release();
    }

    public ConnectionContext Connection { get; } = connection;

    public IPAddress Peer { get; } = peer;

    /// <summary>The peer as written in X-Forwarded-For / X-Real-IP, formatted once per connection.</summary>
    public byte[] PeerBytes { get; } = Encoding.ASCII.GetBytes(peer.ToString());

    public PipeReader Input => Connection.Transport.Input;

    public PipeWriter Output => Connection.Transport.Output;
}
