using System.Net.Security;
using System.Security.Authentication;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// The certificate every TLS handshake uses. Handshakes read one immutable generation; a reload
/// builds and validates a new one and publishes it with one atomic write, so connections that are
/// open keep their session and new ones get the new certificate. Nothing is swapped when the new
/// files do not make a working certificate. A generation is an OpenSSL context (TLS on the epoll
/// socket) and, where Kestrel's TLS serves (the socket transport, or no OpenSSL 3), SslStream's options.
/// </summary>
internal sealed class TlsCertificateStore
{
    /// <summary>ALPN in the server's order of preference: HTTP/2, then HTTP/1.1 (RFC 7301 §3.2).</summary>
    private static readonly List<SslApplicationProtocol> Alpn = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    /// <summary>Kestrel's TLS serves connections too (not only OpenSSL on the epoll socket): its options are built with each generation.</summary>
    private readonly bool _kestrelServes;

    private volatile Published _current;

    private TlsCertificateStore(string certPath, string keyPath, ServerCertificate initial, bool kestrelServes)
    {
        CertPath = certPath;
        KeyPath = keyPath;
        _kestrelServes = kestrelServes;
        _current = Publish(initial);
    }

    public string CertPath { get; }

    public string KeyPath { get; }

    public ServerCertificate Current => _current.Certificate;

    /// <summary>False when the machine has no OpenSSL 3: epoll connections then take Kestrel's TLS too.</summary>
    public bool OnSocket => _current.Native is not null;

    /// <summary>
    /// Loads TLS_CERT_FILE / TLS_KEY_FILE at start; throws <see cref="ServerCertificateException"/>
    /// (start exits 2 with it). <paramref name="epollTransport"/>: connections arrive on the epoll
    /// transport, where OpenSSL serves them, so SslStream's options are built only if ever needed.
    /// </summary>
    public static TlsCertificateStore Load(string certPath, string keyPath, TimeProvider time, bool epollTransport)
    {
        var (cert, key) = ServerCertificate.ReadFiles(certPath, keyPath);
        // An expired certificate still starts the gateway (clients see why they fail, and the
        // watcher installs the renewed one); the start-up log warns.
        return new TlsCertificateStore(certPath, keyPath, ServerCertificate.Create(certPath, cert, keyPath, key, time.GetUtcNow(), requireValidNow: false), kestrelServes: !epollTransport);
    }

    /// <summary>
    /// Reads the files again and, when they changed and make a valid certificate, publishes it (true);
    /// false when they are unchanged. Throws <see cref="ServerCertificateException"/> (the current
    /// certificate stays) when they do not make one.
    /// </summary>
    public bool Reload(TimeProvider time)
    {
        var (cert, key) = ServerCertificate.ReadFiles(CertPath, KeyPath);
        if (_current.Certificate.SameFiles(cert, key))
        {
            return false;
        }
        _current = Publish(ServerCertificate.Create(CertPath, cert, KeyPath, key, time.GetUtcNow(), requireValidNow: true));
        return true;
    }

    /// <summary>Kestrel's per-connection TLS callback: the current options, no allocation.</summary>
    public ValueTask<SslServerAuthenticationOptions> OnConnection(TlsHandshakeCallbackContext context) => new(_current.KestrelOptions);

    /// <summary>TLS with ALPN h2 and http/1.1 on <paramref name="listen"/>, before any other connection middleware.</summary>
    public void Configure(ListenOptions listen)
    {
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        var kestrel = new TlsHandshakeCallbackOptions { OnConnection = OnConnection };
        // Epoll connections take TLS straight on the socket (SocketTls) and continue after Kestrel's
        // middleware, which serves every other transport; UseHttps also marks the endpoint as TLS for Kestrel.
        ConnectionDelegate? afterTls = null;
        listen.Use(SocketTls.Middleware(() => _current.Native, kestrel.HandshakeTimeout, () => afterTls));
        listen.UseHttps(kestrel);
        listen.Use(next => afterTls = next);
    }

    /// <summary>A new generation: both engines' contexts built, or the reason it cannot serve (<see cref="ServerCertificateException"/>).</summary>
    private Published Publish(ServerCertificate certificate)
    {
        var native = NativeContext(certificate);
        var generation = new Published(certificate, native);
        if (native is null || _kestrelServes)
        {
            _ = generation.KestrelOptions;   // built now, so a certificate Kestrel's TLS cannot use is refused here
        }
        return generation;
    }

    /// <summary>The certificate as an OpenSSL context for TLS on the epoll socket; null without OpenSSL 3. Throws <see cref="ServerCertificateException"/> when OpenSSL refuses it.</summary>
    private TlsContext? NativeContext(ServerCertificate certificate)
    {
        try
        {
            return TlsContext.Create(certificate.CertBytes, certificate.KeyBytes);
        }
        catch (TlsException ex)
        {
            throw new ServerCertificateException(CertPath, ex.Message);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// One published generation, shared read-only by every handshake (an OpenSSL session takes a
    /// reference to the context; SslStream copies what it needs from the options). The options are
    /// built on first use where Kestrel's TLS does not serve (an epoll connection never reads them).
    /// </summary>
    private sealed class Published(ServerCertificate certificate, TlsContext? native)
    {
        private SslServerAuthenticationOptions? _kestrelOptions;

        public ServerCertificate Certificate { get; } = certificate;

        public TlsContext? Native { get; } = native;

        public SslServerAuthenticationOptions KestrelOptions => _kestrelOptions ??= new SslServerAuthenticationOptions
        {
            ServerCertificateContext = Certificate.CreateKestrelContext(),
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ApplicationProtocols = Alpn,
            // RFC 9113 §9.2.1: no renegotiation under HTTP/2 (Kestrel sets the same when it configures ALPN).
            AllowRenegotiation = false,
            ClientCertificateRequired = false,
            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
        };
    }
}
