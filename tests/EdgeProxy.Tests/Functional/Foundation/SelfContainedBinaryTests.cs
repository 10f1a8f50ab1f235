using System.Net;
using System.Text.RegularExpressions;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// "The binary is self-contained: copy it alone to another directory and it runs."
/// Only meaningful for the Native AOT binary, hence skipped unless EDGEPROXY_BIN is set.
/// </summary>
public sealed partial class SelfContainedBinaryTests
{
    /// <summary>
    /// Start to the first /health within 50 ms: the gen 0 budget embedded in the binary
    /// (EdgeProxy.csproj, GCgen0size) holds what start-up allocates, so no collection pauses it.
    /// With the runtime's default budget this saw one compacting collection (~6.5 ms) every start.
    /// </summary>
    [AotFact]
    public async Task Start_up_to_the_first_health_answer_runs_no_garbage_collection()
    {
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For("svc", "m", ("b1", "http://127.0.0.1:9", 1)),
            Environment = new Dictionary<string, string> { ["BACKEND_API_KEY"] = "", ["HEALTH_CHECK_INTERVAL"] = "300" },
        });

        // StartAsync waited for the first 200 on /health; the scrape itself allocates little.
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var allocated = long.Parse(AllocatedLine().Match(text).Groups[1].Value);
        Assert.True(allocated > 1_000_000, $"start-up allocated only {allocated} B: the measurement is not what it was");
        Assert.Equal("0", Gen0Line().Match(text).Groups[1].Value);
    }

    [GeneratedRegex(@"^edgeproxy_gc_collections_total\{generation=""0""\} (\d+)$", RegexOptions.Multiline)]
    private static partial Regex Gen0Line();

    [GeneratedRegex(@"^edgeproxy_gc_allocated_bytes_total (\d+)$", RegexOptions.Multiline)]
    private static partial Regex AllocatedLine();

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
