using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// TLS on an epoll connection with OpenSSL on the socket (<see cref="TlsSession"/>), as nginx
/// terminates it: the connection's own pipes carry the plaintext, so TLS adds no stream, pipe or
/// async hop. The handshake timeout, the certificate generation and the connection features the
/// HTTP layers read are those of Kestrel's HTTPS middleware, which still serves connections from
/// any other transport, and epoll connections too when the machine has no OpenSSL 3.
/// </summary>
internal static class SocketTls
{
    /// <summary>
    /// The same TLS as <paramref name="kestrelTls"/> (registered right after this) for epoll
    /// connections: the handshake runs here on <paramref name="context"/>'s current generation and
    /// the connection continues at <paramref name="afterTls"/>, the middleware that follows Kestrel's.
    /// </summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> Middleware(Func<TlsContext?> context, TimeSpan handshakeTimeout, Func<ConnectionDelegate?> afterTls)
        => kestrelTls => connection => connection is EpollConnection epoll && afterTls() is { } next && context() is { } tls
            ? ServeAsync(epoll, tls, handshakeTimeout, next)
            : kestrelTls(connection);

    private static async Task ServeAsync(EpollConnection connection, TlsContext context, TimeSpan handshakeTimeout, ConnectionDelegate next)
    {
        TlsSessionInfo session;
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
            handshake.CancelAfter(handshakeTimeout);
            session = await connection.StartTlsAsync(context, handshake.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or OperationCanceledException or ConnectionAbortedException or SocketException or TlsException)
        {
            // As Kestrel: a failed or timed-out handshake closes the connection; nothing is answered.
            return;
        }
        var features = new Features(session);
        connection.Features.Set<ITlsConnectionFeature>(features);
        connection.Features.Set<ITlsApplicationProtocolFeature>(features);
        connection.Features.Set<ITlsHandshakeFeature>(features);
        await next(connection).ConfigureAwait(false);
    }

    /// <summary>What Kestrel's HTTP/1.1 and HTTP/2 read off a TLS connection: the scheme, ALPN, and the protocol HTTP/2 requires (RFC 9113 §9.2).</summary>
    private sealed class Features(TlsSessionInfo session) : ITlsConnectionFeature, ITlsApplicationProtocolFeature, ITlsHandshakeFeature
    {
        public X509Certificate2? ClientCertificate
        {
            get => null;
            set => throw new NotSupportedException("Client certificates are not requested.");
        }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);

        public ReadOnlyMemory<byte> ApplicationProtocol => session.ApplicationProtocol;

        public SslProtocols Protocol => session.Protocol;

        public TlsCipherSuite? NegotiatedCipherSuite => session.CipherSuite;

        public string HostName => session.HostName ?? "";

#pragma warning disable SYSLIB0058 // the legacy members of the interface, which OpenSSL does not break down; Kestrel's HTTP layers do not read them
        public CipherAlgorithmType CipherAlgorithm => CipherAlgorithmType.None;

        public int CipherStrength => 0;

        public HashAlgorithmType HashAlgorithm => HashAlgorithmType.None;

        public int HashStrength => 0;

        public ExchangeAlgorithmType KeyExchangeAlgorithm => ExchangeAlgorithmType.None;

        public int KeyExchangeStrength => 0;
#pragma warning restore SYSLIB0058
    }
}
