using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using EdgeProxy.Configuration;
using EdgeProxy.Transport;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The one upstream connection pool of the process. Proxy, redirects, decompression and cookies
/// are off: a gateway relays exactly what the backend says. Connects go through our own callback
/// so a connect timeout is recognisable (and safe to fail over) and Nagle is off for token streams.
/// </summary>
internal static class UpstreamClientFactory
{
    /// <param name="validateCertificate">https backends' certificate check (<see cref="UpstreamTls"/>); null: the system CAs.</param>
    public static HttpMessageInvoker CreateForwardingClient(GatewaySettings settings, RemoteCertificateValidationCallback? validateCertificate = null)
        => new(CreateHandler(settings, settings.MaxConnections, validateCertificate), disposeHandler: true);

    /// <summary>
    /// Health checks use their own small pool so a backend saturated by live traffic is not
    /// declared unhealthy just because its checks queue behind requests.
    /// </summary>
    public static HttpMessageInvoker CreateHealthClient(GatewaySettings settings, RemoteCertificateValidationCallback? validateCertificate = null)
        => new(CreateHandler(settings, maxConnections: 2, validateCertificate), disposeHandler: true);

    private static SocketsHttpHandler CreateHandler(GatewaySettings settings, int maxConnections, RemoteCertificateValidationCallback? validateCertificate)
    {
        var connectTimeout = settings.ConnectTimeout;
        return new SocketsHttpHandler
        {
            // SNI and the name check use the request URI's host, the backend's (the client's Host is never sent upstream).
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = validateCertificate },
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            MaxConnectionsPerServer = maxConnections,
            // SocketsHttpHandler has no idle-connection count; idle connections above the keep-alive
            // budget are closed by the idle timeout instead (MAX_KEEPALIVE_CONNECTIONS = 0: 1 s).
            PooledConnectionIdleTimeout = settings.MaxKeepAliveConnections == 0 ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(60),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            ConnectTimeout = Timeout.InfiniteTimeSpan,
            Expect100ContinueTimeout = TimeSpan.Zero,
            // A response the forwarder stops reading early (client gone, stream failed) must close its
            // connection at once so the backend stops generating (within 100 ms). The default
            // (drain up to 1 MB for up to 2 s to reuse the connection) kept a token stream running for
            // 2 s after its client left whenever the copy loop was not inside a cancellable read.
            MaxResponseDrainSize = 0,
            // No tracing headers injected into upstream requests (and no per-request Activity cost).
            ActivityHeadersPropagator = null,
            EnableMultipleHttp2Connections = true,
            ConnectCallback = async (context, cancellationToken) =>
                new NetworkStream(await ConnectSocketAsync(context.DnsEndPoint, connectTimeout, cancellationToken).ConfigureAwait(false), ownsSocket: true),
        };
    }

    /// <summary>
    /// Opens a TCP connection within the connect timeout (Nagle off: token streams are many small
    /// writes). A timeout surfaces as <see cref="UpstreamConnectTimeoutException"/> so the forwarder
    /// can tell it apart (and fail over) whichever upstream client made the connection.
    /// </summary>
    internal static async ValueTask<Socket> ConnectSocketAsync(DnsEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endPoint, timeoutSource.Token).ConfigureAwait(false);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new UpstreamConnectTimeoutException(endPoint, timeout);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
