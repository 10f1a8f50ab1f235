using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// TLS on an epoll connection with the socket straight under <see cref="SslStream"/>. Kestrel's
/// HTTPS middleware puts the transport's pipes and a stream adapter below the TLS layer, so every
/// record crossed two more buffers and async hops; here the records are received into SslStream's
/// own buffer and written to the kernel as SslStream produces them. The handshake, its timeout,
/// the certificate generation and the connection features the HTTP layers read are those of
/// Kestrel's middleware, which still serves connections from any other transport.
/// </summary>
internal static class SocketTls
{
    /// <summary>
    /// The same TLS as <paramref name="kestrelTls"/> (registered right after this) for epoll
    /// connections: the handshake runs here and the connection continues at <paramref name="afterTls"/>,
    /// the middleware that follows Kestrel's; other connections go through Kestrel's.
    /// </summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> Middleware(Func<SslServerAuthenticationOptions> options, TimeSpan handshakeTimeout, Func<ConnectionDelegate?> afterTls)
        => kestrelTls => connection => connection is EpollConnection epoll && afterTls() is { } next
            ? ServeAsync(epoll, options(), handshakeTimeout, next)
            : kestrelTls(connection);

    private static async Task ServeAsync(EpollConnection connection, SslServerAuthenticationOptions options, TimeSpan handshakeTimeout, ConnectionDelegate next)
    {
        var ssl = new SslStream(connection.OpenStream(), leaveInnerStreamOpen: false);
        try
        {
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
            {
                handshake.CancelAfter(handshakeTimeout);
                await ssl.AuthenticateAsServerAsync(options, handshake.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or AuthenticationException or OperationCanceledException or ConnectionAbortedException)
        {
            // As Kestrel: a failed or timed-out handshake closes the connection; nothing is answered.
            await ssl.DisposeAsync().ConfigureAwait(false);
            return;
        }
        var features = new Features(ssl);
        connection.Features.Set<ITlsConnectionFeature>(features);
        connection.Features.Set<ITlsApplicationProtocolFeature>(features);
        connection.Features.Set<ITlsHandshakeFeature>(features);
        connection.Features.Set<ISslStreamFeature>(features);
        var transport = connection.Transport;
        // Zero-byte reads, as Kestrel's middleware: an idle connection holds no decrypted-data buffer.
        var input = PipeReader.Create(ssl, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true));
        var output = PipeWriter.Create(ssl, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        connection.Transport = new DuplexPipe(input, output);
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
            await output.CompleteAsync().ConfigureAwait(false);
            connection.Transport = transport;
            await ssl.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>What Kestrel's HTTP/1.1 and HTTP/2 read off a TLS connection: the scheme, ALPN, and the protocol HTTP/2 requires (RFC 9113 §9.2).</summary>
    private sealed class Features(SslStream ssl) : ITlsConnectionFeature, ITlsApplicationProtocolFeature, ITlsHandshakeFeature, ISslStreamFeature
    {
        public SslStream SslStream => ssl;

        public X509Certificate2? ClientCertificate
        {
            get => null;
            set => throw new NotSupportedException("Client certificates are not requested.");
        }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);

        public ReadOnlyMemory<byte> ApplicationProtocol => ssl.NegotiatedApplicationProtocol.Protocol;

        public SslProtocols Protocol => ssl.SslProtocol;

        public TlsCipherSuite? NegotiatedCipherSuite => ssl.NegotiatedCipherSuite;

        public string HostName => ssl.TargetHostName;

#pragma warning disable SYSLIB0058 // the legacy members of the interface, answered as Kestrel's feature does
        public CipherAlgorithmType CipherAlgorithm => ssl.CipherAlgorithm;

        public int CipherStrength => ssl.CipherStrength;

        public HashAlgorithmType HashAlgorithm => ssl.HashAlgorithm;

        public int HashStrength => ssl.HashStrength;

        public ExchangeAlgorithmType KeyExchangeAlgorithm => ssl.KeyExchangeAlgorithm;

        public int KeyExchangeStrength => ssl.KeyExchangeStrength;
#pragma warning restore SYSLIB0058
    }
}
