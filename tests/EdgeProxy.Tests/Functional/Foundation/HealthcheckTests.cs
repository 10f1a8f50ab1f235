using EdgeProxy.Tests.Functional.Tls;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// `edgeproxy --healthcheck [URL]`: the container probe that needs no shell, wget or curl. Exit 0
/// when the URL (by default this configuration's own /health) answers 2xx, else 1 with the reason.
/// </summary>
public sealed class HealthcheckTests(ITestOutputHelper output)
{
    private static readonly string Backends = BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1));

    [Fact]
    public async Task Healthcheck_exits_0_against_its_own_serving_gateway()
    {
        await using var gateway = await GatewayProcess.StartAsync(Backends);
        // No URL: PORT and HOST from the environment, as the container's HEALTHCHECK runs it.
        var (code, text) = await GatewayProcess.RunToExitAsync(null, new Dictionary<string, string> { ["PORT"] = gateway.Port.ToString() }, args: ["--healthcheck"]);
        output.WriteLine(text);
        Assert.Equal(0, code);
        (code, text) = await GatewayProcess.RunToExitAsync(null, args: ["--healthcheck", gateway.BaseUrl + "/ready"]);
        Assert.Equal(0, code);
    }

    [Fact]
    public async Task Healthcheck_exits_1_when_nothing_answers()
    {
        var port = FreePort.Get();
        var (code, text) = await GatewayProcess.RunToExitAsync(null, new Dictionary<string, string> { ["PORT"] = port.ToString() }, args: ["--healthcheck"]);
        output.WriteLine(text);
        Assert.Equal(1, code);
        Assert.Contains($"http://127.0.0.1:{port}/health", text);
    }

    [Fact]
    public async Task Healthcheck_exits_1_on_a_non_2xx_answer_or_a_bad_url()
    {
        await using var gateway = await GatewayProcess.StartAsync(Backends);
        var (code, text) = await GatewayProcess.RunToExitAsync(null, args: ["--healthcheck", gateway.BaseUrl + "/no-such-page"]);
        output.WriteLine(text);
        Assert.Equal(1, code);
        Assert.Contains("answered 404", text);
        (code, text) = await GatewayProcess.RunToExitAsync(null, args: ["--healthcheck", "ftp://127.0.0.1/"]);
        Assert.Equal(1, code);
        Assert.Contains("not an http:// or https:// URL", text);
    }

    [Fact]
    public async Task Healthcheck_uses_https_when_tls_is_on_the_main_port()
    {
        await using var tls = await TlsGateway.StartAsync(Backends);
        var env = new Dictionary<string, string>
        {
            ["PORT"] = tls.Gateway.Port.ToString(),
            ["TLS_CERT_FILE"] = tls.CertPath,
            ["TLS_KEY_FILE"] = tls.KeyPath,
        };
        var (code, text) = await GatewayProcess.RunToExitAsync(null, env, args: ["--healthcheck"]);
        output.WriteLine(text);
        Assert.Equal(0, code);
        // The same port asked over cleartext is not healthy.
        (code, text) = await GatewayProcess.RunToExitAsync(null, args: ["--healthcheck", $"http://127.0.0.1:{tls.Gateway.Port}/health"]);
        output.WriteLine(text);
        Assert.Equal(1, code);
    }
}
