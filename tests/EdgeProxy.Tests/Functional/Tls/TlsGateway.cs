using System.Security.Cryptography.X509Certificates;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Tls;

/// <summary>
/// The real gateway terminating TLS with certificates made by the test: PEM files in the gateway's
/// working directory (`tls/fullchain.pem`, `tls/privkey.pem`), TLS_CERT_FILE / TLS_KEY_FILE pointing
/// at them, and a client that trusts only the test root.
/// </summary>
internal sealed class TlsGateway : IAsyncDisposable
{
    private TlsGateway(GatewayProcess gateway, TestCertificates pki, X509Certificate2 leaf, string certPath, string keyPath)
    {
        Gateway = gateway;
        Pki = pki;
        Leaf = leaf;
        CertPath = certPath;
        KeyPath = keyPath;
    }

    public GatewayProcess Gateway { get; }

    public TestCertificates Pki { get; }

    /// <summary>The leaf the gateway started with.</summary>
    public X509Certificate2 Leaf { get; }

    public string CertPath { get; }

    public string KeyPath { get; }

    /// <summary>`https://127.0.0.1:PORT` (the leaf names 127.0.0.1; no resolver involved).</summary>
    public string BaseUrl => $"https://127.0.0.1:{Gateway.Port}";

    /// <summary>The root CA as a PEM file (for curl --cacert and NODE_EXTRA_CA_CERTS).</summary>
    public string RootPemPath => Path.Combine(Gateway.Directory, "tls", "root.pem");

    public static async Task<TlsGateway> StartAsync(string backendsJson, IDictionary<string, string>? environment = null)
    {
        var pki = TestCertificates.Create();
        var leaf = pki.IssueLeaf();
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>())
        {
            ["TLS_CERT_FILE"] = "tls/fullchain.pem",
            ["TLS_KEY_FILE"] = "tls/privkey.pem",
        };
        var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = backendsJson,
            Environment = env,
            WaitForHealth = false,
            ExtraFiles = new Dictionary<string, string>
            {
                ["tls/fullchain.pem"] = pki.ChainPem(leaf),
                ["tls/privkey.pem"] = TestCertificates.KeyPem(leaf),
                ["tls/root.pem"] = pki.RootPem,
            },
        });
        var tls = new TlsGateway(gateway, pki, leaf, Path.Combine(gateway.Directory, "tls", "fullchain.pem"), Path.Combine(gateway.Directory, "tls", "privkey.pem"));
        try
        {
            using var probe = pki.CreateClient();
            await gateway.WaitHealthyAsync(TimeSpan.FromSeconds(30), probe, tls.BaseUrl + "/health");
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
        return tls;
    }

    /// <summary>The serial number of the leaf a new TLS connection is shown (a fresh client per call: no reused connection).</summary>
    public async Task<string> ServedSerialAsync()
    {
        string? serial = null;
        using var client = Pki.CreateClient(onServerCertificate: c => serial = c.SerialNumber);
        using var response = await client.GetAsync(BaseUrl + "/health");
        response.EnsureSuccessStatusCode();
        return serial ?? throw new InvalidOperationException("no server certificate seen");
    }

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        Leaf.Dispose();
        Pki.Dispose();
    }
}
