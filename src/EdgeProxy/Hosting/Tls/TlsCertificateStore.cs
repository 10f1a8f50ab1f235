using System.Net.Security;
using System.Security.Authentication;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// The certificate every TLS handshake uses. Handshakes read one immutable options object; a reload
/// builds and validates a new one and publishes it with one atomic write, so connections that are
/// open keep their session and new ones get the new certificate. Nothing is swapped when the new
/// files do not make a working certificate.
/// </summary>
internal sealed class TlsCertificateStore(string certPath, string keyPath, ServerCertificate initial)
{
    /// <summary>ALPN in the server's order of preference: HTTP/2, then HTTP/1.1 (RFC 7301 §3.2).</summary>
    private static readonly List<SslApplicationProtocol> Alpn = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    private volatile Published _current = Publish(initial, certPath);

    public string CertPath { get; } = certPath;

    public string KeyPath { get; } = keyPath;

    public ServerCertificate Current => _current.Certificate;

    /// <summary>Loads TLS_CERT_FILE / TLS_KEY_FILE at start; throws <see cref="ServerCertificateException"/> (start exits 2 with it).</summary>
    public static TlsCertificateStore Load(string certPath, string keyPath, TimeProvider time)
    {
        var (cert, key) = ServerCertificate.ReadFiles(certPath, keyPath);
        // An expired certificate still starts the gateway (clients see why they fail, and the
        // watcher installs the renewed one); the start-up log warns.
        return new TlsCertificateStore(certPath, keyPath, ServerCertificate.Create(certPath, cert, keyPath, key, time.GetUtcNow(), requireValidNow: false));
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
        _current = Publish(ServerCertificate.Create(CertPath, cert, KeyPath, key, time.GetUtcNow(), requireValidNow: true), CertPath);
        return true;
    }

    /// <summary>Kestrel's per-connection TLS callback: the current options, no allocation.</summary>
    public ValueTask<SslServerAuthenticationOptions> OnConnection(TlsHandshakeCallbackContext context) => new(_current.Options);

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

    /// <summary>False when the machine has no OpenSSL 3: epoll connections then take Kestrel's TLS too.</summary>
    public bool OnSocket => _current.Native is not null;

    private static Published Publish(ServerCertificate certificate, string certPath) => new(certificate, NativeContext(certificate, certPath), new SslServerAuthenticationOptions
    {
        ServerCertificateContext = certificate.Context,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ApplicationProtocols = Alpn,
        // RFC 9113 §9.2.1: no renegotiation under HTTP/2 (Kestrel sets the same when it configures ALPN).
        AllowRenegotiation = false,
        ClientCertificateRequired = false,
        CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
    });

    /// <summary>The certificate as an OpenSSL context for TLS on the epoll socket; null without OpenSSL 3. Throws <see cref="ServerCertificateException"/> when OpenSSL refuses it.</summary>
    private static TlsContext? NativeContext(ServerCertificate certificate, string certPath)
    {
        try
        {
            return TlsContext.Create(certificate.CertBytes, certificate.KeyBytes);
        }
        catch (TlsException ex)
        {
            throw new ServerCertificateException(certPath, ex.Message);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>One published generation: shared read-only by every handshake (SslStream copies what it needs; an OpenSSL session takes a reference to the context).</summary>
    private sealed record Published(ServerCertificate Certificate, TlsContext? Native, SslServerAuthenticationOptions Options);
}
