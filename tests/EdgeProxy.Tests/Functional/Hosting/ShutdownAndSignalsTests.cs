using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Hosting;

/// <summary>
/// Shutdown and signals, on every path and transport. SIGTERM: the listening socket closes at once
/// (new clients are refused, a replacement binds the port while this process drains), `/ready`
/// answers 503, the requests in flight finish within SHUTDOWN_TIMEOUT, the ones still open then end
/// with the shutdown error (a 503, or the stream's error frame) logged as `shutdown`, and the process
/// exits 0. SIGHUP reloads backends.json even when the process inherited SIGHUP as ignored (nohup).
/// </summary>
[Trait(Matrix.Trait, Matrix.Variants)]
public sealed class ShutdownAndSignalsTests(ITestOutputHelper output)
{
    /// <summary>
    /// Long enough for the checks made while the gateway drains, on a loaded 2-core box: they start a
    /// replacement gateway, which took 5.7-7.5 s under a full suite's load (1-2 s when quiet).
    /// </summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(15);

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Sigterm_stops_accepting_at_once_drains_then_ends_what_is_open_and_exits_0(string variantName)
    {
        var variant = GatewayVariant.Parse(variantName);
        await using var backend = await BackendProcess.StartAsync("b1");
        var config = BackendsJson.For("svc", "m", ("b1", backend.Url, 1));
        await using var gateway = await GatewayProcess.StartAsync(config, variant.Apply(new Dictionary<string, string>
        {
            ["SHUTDOWN_TIMEOUT"] = DrainTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var token = deadline.Token;
        using var client = TestHttp.Create(timeout: TimeSpan.FromSeconds(60));

        // 1. Before the signal. Requests that have begun (request line sent, the rest after the
        //    signal): the server still answers them, which is how a request reaches a draining
        //    gateway at all. Written first, so the server has read them long before the signal (the
        //    streams below take several round trips). /ready on a keep-alive connection that Kestrel
        //    serves on both paths (its first request, /health, is not a proxy request), and on a
        //    fresh connection; a proxy request on a fresh connection (the fast path's, when on).
        await using var readyProbe = await RawConnection.OpenAsync(gateway.Port, TimeSpan.FromSeconds(60));
        await readyProbe.WriteAsync("GET /health HTTP/1.1\nHost: localhost");
        Assert.Equal(200, (await readyProbe.ReadResponseAsync()).Status);
        await readyProbe.WriteAsync("GET /ready HTTP/1.1\r\n"u8.ToArray());
        await using var freshReadyProbe = await RawConnection.OpenAsync(gateway.Port, TimeSpan.FromSeconds(60));
        await freshReadyProbe.WriteAsync("GET /ready HTTP/1.1\r\n"u8.ToArray());
        await using var proxyProbe = await RawConnection.OpenAsync(gateway.Port, TimeSpan.FromSeconds(60));
        await proxyProbe.WriteAsync("GET /svc/m/echo/begun-before-sigterm HTTP/1.1\r\n"u8.ToArray());

        //    A stream that will end during the drain (its backend sends event k+1 once the test acks k).
        var gate = "drain-" + Guid.NewGuid().ToString("N")[..8];
        using var finishing = await client.GetAsync($"{gateway.BaseUrl}/svc/m/sse-gated?events=3&gate={gate}", HttpCompletionOption.ResponseHeadersRead, token);
        Assert.Equal(HttpStatusCode.OK, finishing.StatusCode);
        var finishingId = finishing.Headers.GetValues("X-Request-ID").Single();
        var finishingReader = new SseReader(await finishing.Content.ReadAsStreamAsync(token));
        Assert.Contains("\"i\":0,", (await finishingReader.ReadAsync(token))?.Data);

        //    An SSE stream and an NDJSON stream that outlast SHUTDOWN_TIMEOUT, and a request whose backend never answers.
        using var sse = await client.GetAsync($"{gateway.BaseUrl}/svc/m/sse-forever?delayMs=200", HttpCompletionOption.ResponseHeadersRead, token);
        var sseId = sse.Headers.GetValues("X-Request-ID").Single();
        var sseReader = new SseReader(await sse.Content.ReadAsStreamAsync(token));
        Assert.Contains("\"i\":0,", (await sseReader.ReadAsync(token))?.Data);
        using var ndjson = await client.GetAsync($"{gateway.BaseUrl}/svc/m/ndjson?lines=100000&delayMs=200", HttpCompletionOption.ResponseHeadersRead, token);
        var ndjsonId = ndjson.Headers.GetValues("X-Request-ID").Single();
        var ndjsonReader = new SseReader(await ndjson.Content.ReadAsStreamAsync(token));
        Assert.Contains("\"i\":0,", await ndjsonReader.ReadLineAsync(token));
        var hanging = client.GetAsync($"{gateway.BaseUrl}/svc/m/hang", token);
        await Poll.UntilAsync(async () => (await backend.StatsAsync()).GetProperty("in_flight").GetInt32() >= 4, TimeSpan.FromSeconds(10), "the hanging request to reach the backend");

        // 2. SIGTERM.
        var signalled = Stopwatch.StartNew();
        gateway.SendSigterm();

        // 3. New connections are refused at once, not queued for the whole drain.
        await Poll.UntilAsync(() => ConnectIsRefusedAsync(gateway.Port), TimeSpan.FromSeconds(3), "a new connection to be refused after SIGTERM");
        output.WriteLine($"refused {signalled.Elapsed.TotalMilliseconds:0} ms after SIGTERM");

        // 4. A replacement gateway binds the same port while this one still drains.
        await using (var replacement = await GatewayProcess.StartAsync(config, variant.Apply(new Dictionary<string, string> { ["PORT"] = gateway.Port.ToString() })))
        {
            Assert.False(gateway.HasExited, "the first gateway should still be draining");
            using var health = await replacement.Client.GetAsync(replacement.BaseUrl + "/health", token);
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        output.WriteLine($"replacement served and stopped {signalled.Elapsed.TotalMilliseconds:0} ms after SIGTERM");

        // 5. The requests that had begun are answered: not ready; the proxy request relayed, and then the connection closes.
        await readyProbe.WriteAsync("Host: localhost\r\n\r\n"u8.ToArray());
        var ready = await readyProbe.ReadResponseAsync();
        Assert.True(ready.Status == 503, "expected /ready 503 while draining, got:\n" + ready);
        Assert.Contains("\"status\":\"shutting_down\"", ready.BodyText);
        await freshReadyProbe.WriteAsync("Host: localhost\r\n\r\n"u8.ToArray());
        var freshReady = await freshReadyProbe.ReadResponseAsync();
        Assert.True(freshReady.Status == 503, "expected /ready 503 while draining (fresh connection), got:\n" + freshReady);
        await proxyProbe.WriteAsync("Host: localhost\r\n\r\n"u8.ToArray());
        var proxied = await proxyProbe.ReadResponseAsync();
        Assert.True(proxied.Status == 200, "expected the proxy request begun before SIGTERM to be relayed, got:\n" + proxied);
        Assert.Contains("\"id\":\"b1\"", proxied.BodyText);
        Assert.Equal("close", proxied.Header("Connection"));
        Assert.Empty(await proxyProbe.ReadToEndAsync());

        // 6. The stream that ends within SHUTDOWN_TIMEOUT ends normally.
        await backend.AckAsync(gate, 0);
        Assert.Contains("\"i\":1,", (await finishingReader.ReadAsync(token))?.Data);
        await backend.AckAsync(gate, 1);
        Assert.Contains("\"i\":2,", (await finishingReader.ReadAsync(token))?.Data);
        Assert.Equal("[DONE]", (await finishingReader.ReadAsync(token))?.Data);
        Assert.Null(await finishingReader.ReadAsync(token));
        Assert.True(signalled.Elapsed < DrainTimeout, $"the checks while draining took {signalled.Elapsed.TotalSeconds:0.0} s, more than SHUTDOWN_TIMEOUT: make it longer");

        // 7. At SHUTDOWN_TIMEOUT the streams still open end with the shutdown error frame, then abortively.
        var sseEventsAfterSignal = 0;
        JsonElement sseError = default;
        for (var k = 0; k < 1000 && sseError.ValueKind == JsonValueKind.Undefined; k++)
        {
            var e = await sseReader.ReadAsync(token);
            Assert.True(e is not null, "the SSE stream ended cleanly instead of with an error event");
            if (e.Value.Event == "error")
            {
                sseError = JsonDocument.Parse(e.Value.Data).RootElement.Clone();
                output.WriteLine($"SSE error event {signalled.Elapsed.TotalMilliseconds:0} ms after SIGTERM: {e.Value.Data}");
            }
            else
            {
                sseEventsAfterSignal++;
            }
        }
        Assert.True(signalled.Elapsed >= DrainTimeout - TimeSpan.FromMilliseconds(300), $"the stream was ended {signalled.Elapsed.TotalSeconds:0.0} s after SIGTERM, before SHUTDOWN_TIMEOUT");
        Assert.True(sseEventsAfterSignal > 3, $"the open stream should go on while the gateway drains; it carried {sseEventsAfterSignal} events");
        AssertShutdownError(sseError, sseId);
        await Assert.ThrowsAnyAsync<IOException>(() => sseReader.ReadAsync(token));

        JsonElement ndjsonError = default;
        for (var k = 0; k < 1000 && ndjsonError.ValueKind == JsonValueKind.Undefined; k++)
        {
            var line = await ndjsonReader.ReadLineAsync(token);
            Assert.True(line is not null, "the NDJSON stream ended cleanly instead of with an error line");
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("error", out _))
            {
                ndjsonError = doc.RootElement.Clone();
            }
        }
        AssertShutdownError(ndjsonError, ndjsonId);
        await Assert.ThrowsAnyAsync<IOException>(() => ndjsonReader.ReadLineAsync(token));

        //    The request still waiting for its backend's answer gets the 503.
        string hangId;
        using (var hung = await hanging)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, hung.StatusCode);
            hangId = hung.Headers.GetValues("X-Request-ID").Single();
            using var body = JsonDocument.Parse(await hung.Content.ReadAsStringAsync(token));
            Assert.Equal("shutdown", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        // 8. Exit code 0, and the log says shutdown (not client_gone) for the ones the deadline ended.
        var exitCode = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(20));
        output.WriteLine($"exited with {exitCode} {signalled.Elapsed.TotalMilliseconds:0} ms after SIGTERM");
        Assert.Equal(0, exitCode);
        foreach (var id in new[] { sseId, ndjsonId, hangId })
        {
            var lines = Lines(gateway, id);
            Assert.Contains(lines, l => l.Contains("outcome=shutdown", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.Contains("client_gone", StringComparison.Ordinal));
        }
        Assert.Contains(Lines(gateway, sseId), l => l.Contains("response ended early (shutdown", StringComparison.Ordinal));
        Assert.Contains(Lines(gateway, ndjsonId), l => l.Contains("response ended early (shutdown", StringComparison.Ordinal));
        Assert.Contains(Lines(gateway, hangId), l => l.Contains("status=503", StringComparison.Ordinal));
        Assert.Contains(Lines(gateway, finishingId), l => l.Contains("status=200", StringComparison.Ordinal) && l.Contains("outcome=none", StringComparison.Ordinal));
    }

    private static string[] Lines(GatewayProcess gateway, string requestId)
        => gateway.Output.Lines.Where(l => l.Contains(requestId, StringComparison.Ordinal)).ToArray();

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Sighup_reloads_even_when_the_gateway_was_started_with_sighup_ignored(string variantName)
    {
        var variant = GatewayVariant.Parse(variantName);
        // nohup starts the gateway with SIGHUP ignored (SIG_IGN survives exec). The backends need not
        // run: the status document lists the configured ones either way.
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For("svc", "m", ("old-backend", "http://127.0.0.1:9", 1)),
            // File watching off: only the signal can make the gateway read the file again.
            Environment = variant.Apply(new Dictionary<string, string> { ["WATCH_CONFIG"] = "false", ["HEALTH_CHECK_INTERVAL"] = "60" }),
            Launcher = ["/usr/bin/nohup"],
        });
        // The handler is installed once the config watcher starts, just after the server listens.
        Assert.True(SignalMask(gateway.ProcessId, "SigIgn") is not null, "reads /proc/PID/status (Linux)");
        await Poll.UntilAsync(() => ((SignalMask(gateway.ProcessId, "SigCgt") ?? 0) & SighupBit) != 0, TimeSpan.FromSeconds(5),
            "the gateway to catch SIGHUP (SigCgt) although it was started with SIGHUP ignored");
        Assert.Equal(0UL, (SignalMask(gateway.ProcessId, "SigIgn") ?? 0) & SighupBit);

        await gateway.RewriteConfigAsync(BackendsJson.For("svc", "m", ("new-backend", "http://127.0.0.1:9", 1)));
        gateway.SendSighup();
        await gateway.Output.WaitForLineAsync(l => l.Contains("Configuration reloaded", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        var status = await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status");
        Assert.Contains("\"id\":\"new-backend\"", status);
        Assert.DoesNotContain("\"id\":\"old-backend\"", status);
        Assert.False(gateway.HasExited);
    }

    /// <summary>True when a connect to the port is refused; false when it is accepted or hangs (1 s).</summary>
    private static async Task<bool> ConnectIsRefusedAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancel.Token);
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Queued in the backlog as the listener closed: reset, not served. The next try is refused.
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static void AssertShutdownError(JsonElement frame, string requestId)
    {
        Assert.Equal(JsonValueKind.Object, frame.ValueKind);
        var error = frame.GetProperty("error");
        Assert.Equal("shutdown", error.GetProperty("code").GetString());
        Assert.Equal(requestId, error.GetProperty("request_id").GetString());
    }

    /// <summary>SIGHUP (1) is bit 0 of the signal masks in /proc/PID/status.</summary>
    private const ulong SighupBit = 1;

    /// <summary>One of the signal masks of /proc/PID/status ("SigIgn": ignored, "SigCgt": caught); null when absent.</summary>
    private static ulong? SignalMask(int pid, string field)
    {
        var path = $"/proc/{pid}/status";
        var line = File.Exists(path) ? File.ReadLines(path).FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal)) : null;
        return line is null ? null : Convert.ToUInt64(line[(field.Length + 1)..].Trim(), 16);
    }
}
