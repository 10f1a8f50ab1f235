using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Streaming;

/// <summary>
/// Three timers — connect, first byte, stream idle — each with its own log reason and
/// status, and none of them bounding a healthy stream's length. Timer values are small (0.5–2 s);
/// upper bounds on elapsed time are many times the timer so a loaded box cannot fail them, while the
/// backend's own delays are longer still so only the timer can explain the outcome.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class TimerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Connect_timeout_fails_over_to_another_backend_before_any_byte_was_sent()
    {
        using var blackhole = new BlackholeListener();
        await using var good = await BackendProcess.StartAsync("good");
        // Plain round-robin (no affinity): of two consecutive requests one is sent to the black hole.
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m",
                [new JsonObject { ["id"] = "hole", ["name"] = "hole", ["url"] = blackhole.Url }, new JsonObject { ["id"] = "good", ["name"] = "good", ["url"] = good.Url }],
                new JsonObject { ["affinity"] = "none" }),
            new Dictionary<string, string> { ["CONNECT_TIMEOUT"] = "0.5", ["REQUEST_TIMEOUT"] = "30" });

        for (var i = 0; i < 4; i++)
        {
            using var response = await gateway.Client.PostAsync(gateway.BaseUrl + "/svc/m/echo", new StringContent("payload"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("good", json.RootElement.GetProperty("id").GetString());
            Assert.Equal(7, json.RootElement.GetProperty("body_length").GetInt64()); // the body was not lost by the failed attempt
        }
        await gateway.Output.WaitForLineAsync(
            l => l.Contains("backend hole failed before the request was delivered (upstream_connect_timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Connect_timeout_with_no_other_backend_answers_504_naming_the_connect_timeout()
    {
        using var blackhole = new BlackholeListener();
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("hole", blackhole.Url, 1)),
            new Dictionary<string, string> { ["CONNECT_TIMEOUT"] = "0.5", ["REQUEST_TIMEOUT"] = "30" });

        var watch = Stopwatch.StartNew();
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/echo");
        output.WriteLine($"504 after {watch.ElapsedMilliseconds} ms (CONNECT_TIMEOUT 0.5 s)");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("upstream_connect_timeout", json.RootElement.GetProperty("error").GetProperty("code").GetString());
        // The socket would wait for SYN retransmits for minutes; REQUEST_TIMEOUT is 30 s. 10 s is the generous bound.
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(10));
        await gateway.Output.WaitForLineAsync(l => l.Contains("upstream_connect_timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task First_byte_timeout_answers_504_json_long_before_the_backend_would_have()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string> { ["FIRST_BYTE_TIMEOUT"] = "1", ["REQUEST_TIMEOUT"] = "60" });

        var watch = Stopwatch.StartNew();
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/slow?headersMs=20000");
        var elapsed = watch.Elapsed;
        output.WriteLine($"504 after {elapsed.TotalMilliseconds:0} ms (FIRST_BYTE_TIMEOUT 1 s, backend answers at 20 s)");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("upstream_first_byte_timeout", json.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(response.Headers.GetValues("X-Request-ID").Single(), json.RootElement.GetProperty("request_id").GetString());
        // Not early (the timer is 1 s), and far from the backend's 20 s (10 s leaves room for any stall).
        Assert.InRange(elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(10));
        await gateway.Output.WaitForLineAsync(l => l.Contains("upstream_first_byte_timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Stream_idle_timeout_sends_an_error_event_then_ends_the_stream_abortively()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string> { ["STREAM_IDLE_TIMEOUT"] = "1", ["REQUEST_TIMEOUT"] = "60" });

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/hang-stream?tag=idle", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        var requestId = response.Headers.GetValues("X-Request-ID").Single();
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));

        var first = await reader.ReadAsync(deadline.Token);
        Assert.Contains("\"i\":0", first?.Data);
        var error = await reader.ReadAsync(deadline.Token);
        Assert.Equal("error", error?.Event);
        using var json = JsonDocument.Parse(error!.Value.Data);
        Assert.Equal("idle_timeout", json.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(requestId, json.RootElement.GetProperty("error").GetProperty("request_id").GetString());
        // Abortive end: a clean end (null) would look like a complete stream.
        await Assert.ThrowsAnyAsync<IOException>(() => reader.ReadAsync(deadline.Token));

        await gateway.Output.WaitForLineAsync(l => l.Contains(requestId, StringComparison.Ordinal) && l.Contains("idle_timeout", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        // The gateway also let go of the backend.
        await Poll.UntilAsync(async () => (await backend.StatsAsync()).Aborted("idle") == 1, TimeSpan.FromSeconds(10), "the backend to see the idle stream cancelled");
    }

    [Fact]
    public async Task A_healthy_stream_outlives_REQUEST_TIMEOUT()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(
            BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string> { ["REQUEST_TIMEOUT"] = "2" });

        // One short stream first, so the measured one does not pay the backend's and gateway's first
        // use (which on a loaded box alone can take longer than the 2 s first-byte budget).
        using (var warm = await gateway.Client.GetAsync(gateway.BaseUrl + "/svc/m/sse?events=1&delayMs=0"))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
            await warm.Content.ReadAsStringAsync();
        }

        // 14 events 250 ms apart: ~3.3 s in all, longer than REQUEST_TIMEOUT, each gap 8x under the idle timer.
        const int events = 14;
        var watch = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await gateway.Client.GetAsync(gateway.BaseUrl + $"/svc/m/sse?events={events}&delayMs=250", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        for (var k = 0; k < events; k++)
        {
            var e = await reader.ReadAsync(deadline.Token);
            Assert.Contains($"\"i\":{k},", e?.Data);
        }
        Assert.Equal("[DONE]", (await reader.ReadAsync(deadline.Token))?.Data);
        Assert.Null(await reader.ReadAsync(deadline.Token));
        output.WriteLine($"stream lasted {watch.ElapsedMilliseconds} ms with REQUEST_TIMEOUT=2");
        Assert.True(watch.Elapsed > TimeSpan.FromSeconds(2), "the stream was expected to outlast REQUEST_TIMEOUT");
    }
}
