using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Forwarding;

/// <summary>
/// UPSTREAM_CLIENT=lean (opt-in): a minimal HTTP/1.1 client for the common case — plain-http backends,
/// keep-alive connections pooled per backend. It sits under the same <see cref="HttpMessageInvoker"/>
/// the forwarder always used, so failover, timers and error classification are unchanged: connect
/// failures surface as <see cref="HttpRequestException"/> with <see cref="HttpRequestError.ConnectionError"/>
/// (and an inner <see cref="UpstreamConnectTimeoutException"/> on timeout), cancellation as
/// <see cref="OperationCanceledException"/>, everything after the request was written as a
/// non-connection error. Why: SocketsHttpHandler's general machinery (version negotiation, header
/// validation and descriptor lookups, pool locks, metrics/diagnostics handlers) was ~5% of the
/// gateway's CPU samples under load; with this handler it is ~1%, but end-to-end CPU per request
/// did not measurably drop (kernel socket work and Kestrel dominate; bench/README.md), so it is
/// not the default. Anything it does not support (https, HTTP/2, Expect: 100-continue) goes to
/// SocketsHttpHandler.
/// </summary>
internal sealed class LeanHttpHandler(HttpMessageInvoker fallback, int maxConnections, int maxIdleConnections, TimeSpan connectTimeout) : HttpMessageHandler
{
    /// <summary>Idle keep-alive connections older than this are closed (SocketsHttpHandler used 60 s here too).</summary>
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<(string Host, int Port), LeanConnectionPool> _pools = new();
    private readonly int _maxConnections = maxConnections;
    private readonly int _maxIdle = maxIdleConnections;
    private readonly TimeSpan _connectTimeout = connectTimeout;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri!;
        if (uri.Scheme != Uri.UriSchemeHttp
            || request.Version.Major != 1
            || request.Headers.ExpectContinue == true)
        {
            return fallback.SendAsync(request, cancellationToken);
        }
        var pool = _pools.GetOrAdd((uri.IdnHost, uri.Port), static (key, self) =>
            new LeanConnectionPool(key.Host, key.Port, self._maxConnections, self._maxIdle, self._connectTimeout), this);
        return pool.SendAsync(request, cancellationToken);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var pool in _pools.Values)
            {
                pool.Dispose();
            }
            fallback.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>The shared connect (timeout, Nagle off), with failures as the ConnectionError SocketsHttpHandler would raise.</summary>
    internal static async ValueTask<UpstreamSocket> ConnectAsync(DnsEndPoint endPoint, TimeSpan timeout, Transport.EpollLoops? loops, CancellationToken cancellationToken)
    {
        try
        {
            return loops is null
                ? new RuntimeUpstreamSocket(await UpstreamClientFactory.ConnectSocketAsync(endPoint, timeout, cancellationToken).ConfigureAwait(false))
                : await EpollUpstreamSocket.ConnectAsync(loops, endPoint, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamConnectTimeoutException ex)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"Connecting to {endPoint.Host}:{endPoint.Port} timed out.", ex);
        }
        catch (SocketException ex)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"{ex.Message} ({endPoint.Host}:{endPoint.Port})", ex);
        }
    }
}
