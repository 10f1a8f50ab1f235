using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Tls;

/// <summary>
/// https backends: verified against the system CAs by default, against a backend's own `ca_file`
/// (a private CA), or not at all with an explicit `tls_skip_verify` (warned at start, shown on the
/// status page). The backend is the test backend serving https with a certificate the test made.
/// </summary>
[Trait(Matrix.Trait, Matrix.Variants)]
public sealed class UpstreamTlsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly TestCertificates _pki = TestCertificates.Create();
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "edgeproxy-upstream-" + Guid.NewGuid().ToString("N")[..10]);
    private BackendProcess? _backend;

    private string RootFile => Path.Combine(_directory, "root.pem");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllText(RootFile, _pki.RootPem);
        using var leaf = _pki.IssueLeaf();
        var cert = Path.Combine(_directory, "backend.pem");
        var key = Path.Combine(_directory, "backend.key");
        _pki.WriteInPlace(cert, key, leaf);
        _backend = await BackendProcess.StartAsync("tls1", tls: (cert, key));
        Assert.StartsWith("https://", _backend.Url);
    }

    private string Config(JsonObject? extra = null)
    {
        var backend = BackendsJson.Backend("tls1", _backend!.Url);
        foreach (var (k, v) in extra ?? [])
        {
            backend[k] = v?.DeepClone();
        }
        return BackendsJson.For("svc", "m", [backend]);
    }

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task A_backend_verified_by_its_ca_file_is_proxied(string variant)
    {
        await using var gateway = await GatewayProcess.StartAsync(Config(new JsonObject { ["ca_file"] = RootFile }), GatewayVariant.Parse(variant).Apply());
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo/tls");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        // SNI is not sent for an IP host (RFC 6066 §3); the Host the backend sees is its own URL's.
        Assert.Equal(new Uri(_backend!.Url).Authority, echo.RootElement.GetProperty("headers").GetProperty("host")[0].GetString());
    }

    [Fact]
    public async Task A_backend_with_a_private_ca_fails_against_the_system_cas()
    {
        await using var gateway = await GatewayProcess.StartAsync(Config());
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo/tls");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        output.WriteLine(string.Join('\n', gateway.Output.Lines.TakeLast(5)));
    }

    [Fact]
    public async Task A_ca_file_of_another_ca_does_not_verify_the_backend()
    {
        using var other = TestCertificates.Create();
        var otherRoot = Path.Combine(_directory, "other-root.pem");
        File.WriteAllText(otherRoot, other.RootPem);
        await using var gateway = await GatewayProcess.StartAsync(Config(new JsonObject { ["ca_file"] = otherRoot }));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo/tls");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Fact]
    public async Task Tls_skip_verify_proxies_is_warned_at_start_and_shown_on_the_status_page()
    {
        await using var gateway = await GatewayProcess.StartAsync(Config(new JsonObject { ["tls_skip_verify"] = true }));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo/tls");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(gateway.Output.Lines, l => l.Contains("WRN", StringComparison.Ordinal) && l.Contains("tls_skip_verify", StringComparison.Ordinal) && l.Contains("NOT verified", StringComparison.Ordinal));
        using var status = JsonDocument.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"));
        var backend = status.RootElement.GetProperty("data").GetProperty("svc").GetProperty("m")[0];
        Assert.True(backend.GetProperty("tls_skip_verify").GetBoolean());
    }

    [Fact]
    public async Task A_missing_ca_file_at_start_exits_2_naming_the_field()
    {
        var (code, text) = await GatewayProcess.RunToExitAsync(Config(new JsonObject { ["ca_file"] = Path.Combine(_directory, "missing.pem") }));
        output.WriteLine(text);
        Assert.Equal(2, code);
        Assert.Contains("services.svc.models.m.backends[0].ca_file: cannot read", text);
    }

    public async Task DisposeAsync()
    {
        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }
        _pki.Dispose();
        try { Directory.Delete(_directory, true); } catch (IOException) { }
    }
}
