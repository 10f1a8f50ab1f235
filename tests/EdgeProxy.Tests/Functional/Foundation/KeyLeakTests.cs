using System.Diagnostics;
using System.Net;
using System.Text;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// "No key ever appears in a response, the dashboard, the status API or a log line."
/// Recognisable keys are configured (gateway key, a global upstream key use, per-backend keys on
/// live, refusing and hanging backends), every non-echo response the gateway can give is collected,
/// then the responses and the gateway's complete DEBUG log are scanned for every key.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class KeyLeakTests(ITestOutputHelper output)
{
    private const string GatewayKey = "gwkey-LEAKPROBE-Zq81xa";

    private static readonly string[] BackendKeys =
    [
        "upkey-LIVEPROBE-Hx3b7", "upkey-XKEYPROBE-Pp7c2", "upkey-DEADPROBE-Qw9d4", "upkey-HANGPROBE-Rt2e6",
    ];

    [Fact]
    public async Task No_key_appears_in_any_response_or_log_line()
    {
        await using var backend = await BackendProcess.StartAsync("leak-b");
        using var dead = new ClosedPort();
        var deadPort = dead.Port;
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.Models("svc",
                ("live", [BackendsJson.Backend("live", backend.Url, apiKey: BackendKeys[0], authMode: "Authorization")]),
                ("xkey", [BackendsJson.Backend("xkey", backend.Url, apiKey: BackendKeys[1], authMode: "x-api-key")]),
                ("global", [BackendsJson.Backend("global", backend.Url)]),
                ("dead", [BackendsJson.Backend("dead", $"http://127.0.0.1:{deadPort}", apiKey: BackendKeys[2])]),
                ("hang", [BackendsJson.Backend("hang", backend.Url, apiKey: BackendKeys[3])])),
            new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = GatewayKey,
                ["LOG_LEVEL"] = "DEBUG",
                ["REQUEST_TIMEOUT"] = "3",   // the hanging model's 504; room for a loaded box on the others
                ["HEALTH_CHECK_INTERVAL"] = "0.2",
                ["HEALTH_CHECK_TIMEOUT"] = "0.5",
            });
        var client = gateway.Client;
        var seen = new StringBuilder();

        async Task<HttpStatusCode> Collect(string path, bool authorized = true, HttpMethod? method = null)
        {
            using var request = new HttpRequestMessage(method ?? HttpMethod.Get, gateway.BaseUrl + path);
            if (authorized)
            {
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + GatewayKey);
            }
            using var response = await client.SendAsync(request);
            seen.Append("== ").Append(path).Append(' ').Append((int)response.StatusCode).Append('\n')
                .Append(response.Headers).Append(response.Content.Headers)
                .Append(await response.Content.ReadAsStringAsync()).Append('\n');
            return response.StatusCode;
        }

        // Health checks (which carry the upstream keys) settle first, so their logging is included.
        await Poll.UntilAsync(async () =>
        {
            var status = await client.GetStringAsync(gateway.BaseUrl + "/api/health/status");
            return status.Contains("\"unhealthy\"") && !status.Contains("\"unknown\"");
        }, TimeSpan.FromSeconds(30), "every backend's first health check");

        Assert.Equal(HttpStatusCode.OK, await Collect("/health", authorized: false));
        Assert.Equal(HttpStatusCode.OK, await Collect("/ready", authorized: false));
        Assert.Equal(HttpStatusCode.OK, await Collect("/api/health/status", authorized: false));
        Assert.Equal(HttpStatusCode.OK, await Collect("/api/health/status/svc"));
        Assert.Equal(HttpStatusCode.OK, await Collect("/", authorized: false));
        Assert.Equal(HttpStatusCode.OK, await Collect("/metrics"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Collect("/svc/live/status/200", authorized: false));
        Assert.Equal(HttpStatusCode.Unauthorized, await Collect("/api/health/status/svc", authorized: false));
        Assert.Equal(HttpStatusCode.NotFound, await Collect("/nosuch/model/x"));
        Assert.Equal(HttpStatusCode.NotFound, await Collect("/svc/nosuch/x"));
        Assert.Equal(HttpStatusCode.NotFound, await Collect("/api/health/status/nosuch"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, await Collect("/svc/live/status/200", method: HttpMethod.Trace));
        Assert.Equal(HttpStatusCode.OK, await Collect("/svc/live/status/200"));
        Assert.Equal(HttpStatusCode.OK, await Collect("/svc/xkey/status/200"));
        Assert.Equal(HttpStatusCode.OK, await Collect("/svc/global/status/200"));
        Assert.Equal(HttpStatusCode.InternalServerError, await Collect("/svc/live/status/500"));
        Assert.Equal(HttpStatusCode.BadGateway, await Collect("/svc/dead/v1/chat/completions", method: HttpMethod.Post));
        Assert.Equal(HttpStatusCode.GatewayTimeout, await Collect("/svc/hang/hang"));
        seen.Append("== /api/health/events\n").Append(await FirstEventAsync(gateway));

        // The request log lines are written after the responses: wait for the last one.
        await gateway.Output.WaitForLineAsync(l => l.Contains("svc/hang") && l.Contains("status=504"), TimeSpan.FromSeconds(5));
        var log = gateway.Output.Text;
        output.WriteLine($"scanned {seen.Length} chars of responses and {log.Length} chars of log");
        // DEBUG really was on: the failing checks of the refusing backend are logged at that level.
        Assert.Contains(gateway.Output.Lines, l => l.Contains(" DBG ") && l.Contains("health check svc/dead/dead failed"));

        foreach (var key in BackendKeys.Append(GatewayKey))
        {
            // The distinctive middle part too, so a truncated or re-wrapped key also counts.
            var probe = key.Split('-')[1];
            Assert.False(seen.ToString().Contains(probe), $"'{probe}' leaked in a response:\n{Around(seen.ToString(), probe)}");
            Assert.False(log.Contains(probe), $"'{probe}' leaked in the log:\n{Around(log, probe)}");
        }
    }

    private static async Task<string> FirstEventAsync(GatewayProcess gateway)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/api/health/events", HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
        var text = new StringBuilder();
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            text.Append(line).Append('\n');
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                break;
            }
        }
        return text.ToString();
    }

    private static string Around(string text, string probe)
    {
        var i = text.IndexOf(probe, StringComparison.Ordinal);
        return text[Math.Max(0, i - 300)..Math.Min(text.Length, i + 300)];
    }
}
