using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// The gateway's TLS certificate as loaded from TLS_CERT_FILE and TLS_KEY_FILE (PEM): the leaf with
/// its private key and the chain that follows it in the certificate file, sent in every handshake.
/// The file bytes are kept so a reload of unchanged files is recognised and skipped.
/// </summary>
internal sealed class ServerCertificate
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    private readonly X509Certificate2Collection _intermediates;
    private readonly string _certPath;

    private ServerCertificate(X509Certificate2 leaf, X509Certificate2Collection intermediates, string certPath, byte[] certBytes, byte[] keyBytes)
    {
        Leaf = leaf;
        _intermediates = intermediates;
        _certPath = certPath;
        CertBytes = certBytes;
        KeyBytes = keyBytes;
    }

    public X509Certificate2 Leaf { get; }

    public byte[] CertBytes { get; }

    public byte[] KeyBytes { get; }

    public string Describe() => $"{Leaf.Subject} (serial {Leaf.SerialNumber}, expires {Leaf.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC, {_intermediates.Count} chain certificates)";

    public bool SameFiles(byte[] certBytes, byte[] keyBytes) => certBytes.AsSpan().SequenceEqual(CertBytes) && keyBytes.AsSpan().SequenceEqual(KeyBytes);

    /// <summary>Reads both files; throws <see cref="ServerCertificateException"/> naming the file and the reason.</summary>
    public static (byte[] Cert, byte[] Key) ReadFiles(string certPath, string keyPath) => (Read(certPath), Read(keyPath));

    /// <summary>
    /// Builds the certificate from the two files' bytes. A key that does not match, a file with no
    /// certificate, an encrypted key, a certificate not for server authentication or outside its
    /// validity period (when <paramref name="requireValidNow"/>) are refused with the reason.
    /// </summary>
    public static ServerCertificate Create(string certPath, byte[] certBytes, string keyPath, byte[] keyBytes, DateTimeOffset now, bool requireValidNow)
    {
        var certText = Encoding.UTF8.GetString(certBytes);
        var keyText = Encoding.UTF8.GetString(keyBytes);
        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPem(certText);
        }
        catch (CryptographicException ex)
        {
            throw new ServerCertificateException(certPath, "not a PEM certificate file: " + ex.Message);
        }
        if (all.Count == 0)
        {
            throw new ServerCertificateException(certPath, "no -----BEGIN CERTIFICATE----- block found");
        }
        if (keyText.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal) || keyText.Contains("Proc-Type: 4,ENCRYPTED", StringComparison.Ordinal))
        {
            throw new ServerCertificateException(keyPath, "the private key is encrypted; give the gateway an unencrypted key (file mode 0600)");
        }
        X509Certificate2 leaf;
        try
        {
            // The first certificate of the file is the leaf; the key must be its key.
            leaf = X509Certificate2.CreateFromPem(certText, keyText);
        }
        catch (ArgumentException)
        {
            throw new ServerCertificateException(keyPath, $"cannot use this private key with the certificate in {certPath}: the key does not match the certificate");
        }
        catch (CryptographicException ex)
        {
            // The binary carries resource keys, not message texts (UseSystemResourceKeys): say what was looked for.
            throw new ServerCertificateException(keyPath, $"cannot use this private key with the certificate in {certPath}: no unencrypted PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key matching it ({ex.Message})");
        }
        if (!AllowsServerAuth(leaf))
        {
            throw new ServerCertificateException(certPath, "the certificate's extended key usage does not include server authentication");
        }
        if (requireValidNow && leaf.NotAfter.ToUniversalTime() < now.UtcDateTime)
        {
            throw new ServerCertificateException(certPath, $"the certificate expired on {leaf.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC");
        }
        if (requireValidNow && leaf.NotBefore.ToUniversalTime() > now.UtcDateTime)
        {
            throw new ServerCertificateException(certPath, $"the certificate is not valid before {leaf.NotBefore.ToUniversalTime():yyyy-MM-dd HH:mm} UTC");
        }
        return new ServerCertificate(leaf, new X509Certificate2Collection(all.Skip(1).ToArray()), certPath, certBytes, keyBytes);
    }

    /// <summary>
    /// Leaf, key and intermediates as SslStream's context, for Kestrel's TLS. Building it resolves
    /// the chain against the system's certificate store (about 100 ms), so it is built only where
    /// Kestrel's TLS serves. Throws <see cref="ServerCertificateException"/> when it cannot be built.
    /// </summary>
    public SslStreamCertificateContext CreateKestrelContext()
    {
        try
        {
            // offline: the chain comes from the file; an edge box never fetches intermediates (AIA).
            return SslStreamCertificateContext.Create(Leaf, _intermediates, offline: true);
        }
        catch (Exception ex) when (ex is CryptographicException or NotSupportedException or ArgumentException)
        {
            throw new ServerCertificateException(_certPath, "cannot build the TLS context: " + ex.Message);
        }
    }

    /// <summary>The extended key usage includes server authentication; a certificate without one allows any usage.</summary>
    private static bool AllowsServerAuth(X509Certificate2 certificate)
        => certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault() is not { } eku
            || eku.EnhancedKeyUsages.Cast<Oid>().Any(oid => oid.Value == ServerAuthOid);

    private static byte[] Read(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new ServerCertificateException(path, "file not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new ServerCertificateException(path, "file not found (no such directory)");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ServerCertificateException(path, "cannot read: " + ex.Message);
        }
    }
}

/// <summary>A certificate or key file that cannot serve: which file, and why.</summary>
internal sealed class ServerCertificateException(string path, string reason) : Exception($"{path}: {reason}")
{
    public string FilePath { get; } = path;

    public string Reason { get; } = reason;
}
