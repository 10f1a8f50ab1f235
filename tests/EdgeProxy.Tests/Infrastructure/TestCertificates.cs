using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A throw-away PKI made in the test: a root CA, an intermediate CA, and leaves for 127.0.0.1 and
/// localhost issued by the intermediate. The certificate file the gateway gets is leaf + intermediate
/// (the chain an ACME client writes as fullchain.pem); clients trust only the root, so a handshake
/// succeeds only when the gateway sends the chain.
/// </summary>
internal sealed class TestCertificates : IDisposable
{
    private long _serial = 1000;

    private TestCertificates(X509Certificate2 root, X509Certificate2 intermediate)
    {
        Root = root;
        Intermediate = intermediate;
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Intermediate { get; }

    public string RootPem => PemEncoding.WriteString("CERTIFICATE", Root.RawData);

    public static TestCertificates Create()
    {
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=EdgeProxy Test Root CA", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootRequest.PublicKey, false));
        var root = rootRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));

        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest("CN=EdgeProxy Test Intermediate CA", intermediateKey, HashAlgorithmName.SHA256);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        intermediateRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        intermediateRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(intermediateRequest.PublicKey, false));
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var intermediatePublic = intermediateRequest.Create(root, now.AddDays(-1), now.AddDays(29), [1, 2, 3]);
        var intermediate = intermediatePublic.CopyWithPrivateKey(intermediateKey);
        return new TestCertificates(root, intermediate);
    }

    /// <summary>A leaf for 127.0.0.1, ::1 and localhost (and <paramref name="dnsName"/>) with its private key; serials are unique.</summary>
    public X509Certificate2 IssueLeaf(string dnsName = "localhost", DateTimeOffset? notAfter = null, bool serverAuth = true, bool loopbackNames = true)
    {
        var now = DateTimeOffset.UtcNow;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + dnsName, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        if (loopbackNames)
        {
            san.AddIpAddress(IPAddress.Loopback);
            san.AddIpAddress(IPAddress.IPv6Loopback);
            san.AddDnsName("localhost");
        }
        if (dnsName != "localhost" || !loopbackNames)
        {
            san.AddDnsName(dnsName);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Intermediate, true, false));
        var serial = BitConverter.GetBytes(Interlocked.Increment(ref _serial));
        Array.Reverse(serial);
        using var leafPublic = request.Create(Intermediate, now.AddHours(-1), notAfter ?? now.AddDays(7), serial);
        return leafPublic.CopyWithPrivateKey(key);
    }

    /// <summary>fullchain.pem content: the leaf, then the intermediate.</summary>
    public string ChainPem(X509Certificate2 leaf)
        => PemEncoding.WriteString("CERTIFICATE", leaf.RawData) + "\n" + PemEncoding.WriteString("CERTIFICATE", Intermediate.RawData) + "\n";

    /// <summary>privkey.pem content (PKCS#8).</summary>
    public static string KeyPem(X509Certificate2 leaf) => leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem() + "\n";

    /// <summary>Writes leaf + chain and key in place (truncate and write, as `cp` does).</summary>
    public void WriteInPlace(string certPath, string keyPath, X509Certificate2 leaf)
    {
        File.WriteAllText(certPath, ChainPem(leaf));
        File.WriteAllText(keyPath, KeyPem(leaf));
    }

    /// <summary>Writes new files next to the old ones and renames them over (lego, `mv`), key first.</summary>
    public void WriteByRename(string certPath, string keyPath, X509Certificate2 leaf)
    {
        File.WriteAllText(keyPath + ".new", KeyPem(leaf));
        File.WriteAllText(certPath + ".new", ChainPem(leaf));
        File.Move(keyPath + ".new", keyPath, overwrite: true);
        File.Move(certPath + ".new", certPath, overwrite: true);
    }

    /// <summary>
    /// A client that trusts only this root (plus the chain the server sends) and records the leaf it was
    /// shown. <paramref name="version"/> is requested exactly (no fallback), so an HTTP/2 test cannot
    /// pass over HTTP/1.1.
    /// </summary>
    public HttpClient CreateClient(Version? version = null, Action<X509Certificate2>? onServerCertificate = null,
        SslProtocols protocols = SslProtocols.None, Action<SocketsHttpHandler>? configure = null)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.Add(Root);
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            MaxResponseDrainSize = 0,
            SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = policy,
                EnabledSslProtocols = protocols,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is not null)
                    {
                        onServerCertificate?.Invoke(new X509Certificate2(certificate));
                    }
                    return errors == SslPolicyErrors.None;
                },
            },
        };
        configure?.Invoke(handler);
        var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        if (version is not null)
        {
            client.DefaultRequestVersion = version;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        return client;
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
    }
}
