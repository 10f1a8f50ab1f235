using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Issue #2 item 2: "The binary is self-contained: copy it alone to another directory and it runs."
/// Only meaningful for the Native AOT binary, hence skipped unless EDGEPROXY_BIN is set.
/// </summary>
public sealed class SelfContainedBinaryTests
{
    [AotFact]
    public async Task The_binary_copied_alone_into_an_empty_directory_serves_health()
    {
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            // Nothing but the binary and ./backends.json (found by the contract's fallback) in its directory.
            SetConfigPath = false,
            CopyBinaryToWorkingDirectory = true,
        });

        Assert.Equal(["backends.json", "edgeproxy"], Directory.GetFileSystemEntries(gateway.Directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"status\":\"ok\"", await response.Content.ReadAsStringAsync());
    }
}
