using System.Text;
using EdgeProxy.Configuration;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Unit.Configuration;

/// <summary>backends.json's upstream TLS fields, `ca_file` and `tls_skip_verify`: errors name the field's path.</summary>
public sealed class UpstreamTlsConfigTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "edgeproxy-upstream-tls-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly string _caFile;

    public UpstreamTlsConfigTests()
    {
        Directory.CreateDirectory(_directory);
        using var pki = TestCertificates.Create();
        _caFile = Path.Combine(_directory, "ca.pem");
        File.WriteAllText(_caFile, pki.RootPem);
    }

    private static string Json(params string[] backends)
        => "{\"services\":{\"svc\":{\"models\":{\"m\":{\"backends\":[" + string.Join(",", backends) + "]}}}}}";

    private static string Backend(string id, string url, string extra = "")
        => $"{{\"id\":\"{id}\",\"name\":\"{id}\",\"url\":\"{url}\"{extra}}}";

    private static BackendsConfig Parse(string json, List<string>? warnings = null)
        => BackendsConfigLoader.Parse(Encoding.UTF8.GetBytes(json), "backends.json", warnings);

    [Fact]
    public void Ca_file_is_read_when_the_config_loads()
    {
        var config = Parse(Json(Backend("a", "https://10.0.0.1:8443", $",\"ca_file\":\"{_caFile}\"")));
        var backend = config.Services[0].Models[0].Backends[0];
        Assert.Equal(_caFile, backend.CaFile);
        Assert.Single(backend.CaCertificates);
        Assert.False(backend.TlsSkipVerify);
    }

    [Fact]
    public void Tls_skip_verify_loads_with_a_warning_naming_the_backend()
    {
        var warnings = new List<string>();
        var config = Parse(Json(Backend("a", "https://10.0.0.1:8443", ",\"tls_skip_verify\":true")), warnings);
        Assert.True(config.Services[0].Models[0].Backends[0].TlsSkipVerify);
        var warning = Assert.Single(warnings);
        Assert.StartsWith("services.svc.models.m.backends[0].tls_skip_verify:", warning);
        Assert.Contains("NOT verified", warning);
    }

    [Theory]
    [InlineData("https://10.0.0.1", ",\"ca_file\":\"/nonexistent/ca.pem\"", "services.svc.models.m.backends[0].ca_file", "cannot read '/nonexistent/ca.pem': file not found")]
    [InlineData("https://10.0.0.1", ",\"ca_file\":42", "services.svc.models.m.backends[0].ca_file", "expected the path of a PEM file")]
    [InlineData("http://10.0.0.1", ",\"ca_file\":\"CA\"", "services.svc.models.m.backends[0].ca_file", "applies to https:// backends only")]
    [InlineData("http://10.0.0.1", ",\"tls_skip_verify\":true", "services.svc.models.m.backends[0].tls_skip_verify", "applies to https:// backends only")]
    [InlineData("https://10.0.0.1", ",\"tls_skip_verify\":\"yes\"", "services.svc.models.m.backends[0].tls_skip_verify", "expected true or false")]
    [InlineData("https://10.0.0.1", ",\"tls_skip_verify\":true,\"ca_file\":\"CA\"", "services.svc.models.m.backends[0].tls_skip_verify", "cannot be combined with ca_file")]
    public void Bad_upstream_tls_fields_are_refused_with_their_path(string url, string extra, string path, string message)
    {
        var ex = Assert.Throws<ConfigException>(() => Parse(Json(Backend("a", url, extra.Replace("CA", _caFile)))));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(path, error.Path);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_ca_file_without_certificates_is_refused()
    {
        var empty = Path.Combine(_directory, "empty.pem");
        File.WriteAllText(empty, "nothing here\n");
        var ex = Assert.Throws<ConfigException>(() => Parse(Json(Backend("a", "https://10.0.0.1", $",\"ca_file\":\"{empty}\""))));
        Assert.Contains(ex.Errors, e => e.Path == "services.svc.models.m.backends[0].ca_file" && e.Message.Contains("no -----BEGIN CERTIFICATE-----"));
    }

    [Fact]
    public void Two_tls_rules_for_one_host_are_refused()
    {
        // The rule is found by host when a connection opens; connections are shared per host:port.
        var ex = Assert.Throws<ConfigException>(() => Parse(Json(
            Backend("a", "https://10.0.0.1:8443/v1", $",\"ca_file\":\"{_caFile}\""),
            Backend("b", "https://10.0.0.1:8443/v2", ",\"tls_skip_verify\":true"))));
        var error = Assert.Single(ex.Errors);
        Assert.Equal("services.svc.models.m.backends[1]", error.Path);
        Assert.Contains("services.svc.models.m.backends[0]", error.Message);
        Assert.Throws<ConfigException>(() => Parse(Json(
            Backend("a", "https://10.0.0.1:8443", $",\"ca_file\":\"{_caFile}\""), Backend("b", "https://10.0.0.1:9443", ",\"tls_skip_verify\":true"))));
        // The same rule twice, different hosts, or an http:// backend on the host are fine.
        Parse(Json(Backend("a", "https://10.0.0.1:8443/v1", $",\"ca_file\":\"{_caFile}\""), Backend("b", "https://10.0.0.1:8443/v2", $",\"ca_file\":\"{_caFile}\"")));
        Parse(Json(Backend("a", "https://10.0.0.1:8443", $",\"ca_file\":\"{_caFile}\""), Backend("b", "https://10.0.0.2:9443", ",\"tls_skip_verify\":true"), Backend("c", "http://10.0.0.1:80")));
    }

    public void Dispose()
    {
        try { Directory.Delete(_directory, true); } catch (IOException) { }
    }
}
