using System.Diagnostics;
using System.Net;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Streaming;

/// <summary>
/// Event streams pass through chunk by chunk. The proofs are about order, not speed:
/// the backend holds event k+1 until the test, reading through the gateway, has acknowledged event k,
/// so a gateway that buffers deadlocks and the test fails by its timeout.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class UnbufferedStreamingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Sse_event_k_plus_1_is_only_sent_after_the_client_received_event_k()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));
        const int events = 20;
        var gate = "gate-" + Guid.NewGuid().ToString("N")[..8];

        // Bounded: the backend gives up after 10 s without an ack; the test after 20 s overall.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await gateway.Client.GetAsync(
            $"{gateway.BaseUrl}/svc/m/sse-gated?events={events}&gate={gate}&timeoutMs=10000",
            HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));

        for (var k = 0; k < events; k++)
        {
            SseEvent? next;
            try
            {
                next = await reader.ReadAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"event {k} never arrived: the gateway holds back streamed events (buffering)");
                return;
            }
            Assert.NotNull(next);
            using var json = JsonDocument.Parse(next.Value.Data);
            Assert.False(json.RootElement.TryGetProperty("error", out _), "backend gave up waiting for an ack: " + next.Value.Data);
            Assert.Equal(k, json.RootElement.GetProperty("i").GetInt32());
            await backend.AckAsync(gate, k);
        }

        var done = await reader.ReadAsync(deadline.Token);
        Assert.Equal("[DONE]", done?.Data);
        Assert.Null(await reader.ReadAsync(deadline.Token)); // clean end
    }

    /// <summary>
    /// The test backend has no gated NDJSON, so this uses time instead: line k must be in the
    /// client's hands before the backend sends line k+1 (its sent_at ticks and our receive ticks are
    /// the same CLOCK_MONOTONIC). 500 ms between lines is the margin a loaded 2-core box needs for the
    /// gateway hop (normally a few ms; up to ~360 ms seen for the very first line of a cold JIT
    /// gateway, hence the warm-up request); a buffering gateway misses it by the whole stream.
    /// </summary>
    [Fact]
    public async Task Ndjson_line_k_reaches_the_client_before_the_backend_sends_line_k_plus_1()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));
        const int lines = 6;
        await gateway.Client.GetStringAsync(gateway.BaseUrl + "/svc/m/ndjson?lines=2"); // warm-up: JIT, connections

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await gateway.Client.GetAsync(
            $"{gateway.BaseUrl}/svc/m/ndjson?lines={lines}&delayMs=500", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));

        var sentAt = new long[lines];
        var receivedAt = new long[lines];
        for (var k = 0; k < lines; k++)
        {
            var line = await reader.ReadLineAsync(deadline.Token);
            receivedAt[k] = Stopwatch.GetTimestamp();
            Assert.NotNull(line);
            using var json = JsonDocument.Parse(line);
            Assert.Equal(k, json.RootElement.GetProperty("i").GetInt32());
            sentAt[k] = json.RootElement.GetProperty("sent_at_ticks").GetInt64();
        }
        Assert.Null(await reader.ReadLineAsync(deadline.Token));

        for (var k = 0; k < lines; k++)
        {
            output.WriteLine($"line {k}: received {Ms(receivedAt[k] - sentAt[k]):0.00} ms after it was sent");
        }
        for (var k = 0; k + 1 < lines; k++)
        {
            Assert.True(receivedAt[k] < sentAt[k + 1],
                $"line {k} arrived {Ms(receivedAt[k] - sentAt[k + 1]):0.0} ms after line {k + 1} was sent: the gateway held it back");
        }
    }

    [Theory]
    [InlineData("/sse?events=2", "text/event-stream")]
    [InlineData("/ndjson?lines=2", "application/x-ndjson")]
    [InlineData("/hang-stream", "text/event-stream")]
    public async Task Event_streams_carry_no_buffering_headers_and_keep_their_content_type(string path, string contentType)
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));

        // Headers must be there before the body ends (/hang-stream never ends): read headers only.
        using var request = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + "/svc/m" + path);
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, br");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no", Assert.Single(response.Headers.GetValues("X-Accel-Buffering")));
        Assert.True(response.Headers.CacheControl?.NoCache, "Cache-Control: no-cache expected, got " + response.Headers.CacheControl);
        Assert.Empty(response.Content.Headers.ContentEncoding); // never compressed
        Assert.Null(response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task OpenAi_style_chat_stream_arrives_one_chunk_per_word_with_streaming_headers()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var request = new HttpRequestMessage(HttpMethod.Post, gateway.BaseUrl + "/svc/m/v1/chat/completions?delayMs=20")
        {
            Content = new StringContent("""{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi there"}]}""", System.Text.Encoding.UTF8, "application/json"),
        };
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no", Assert.Single(response.Headers.GetValues("X-Accel-Buffering")));

        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        var text = new System.Text.StringBuilder();
        var chunks = 0;
        for (var i = 0; i < 100; i++)
        {
            var e = await reader.ReadAsync(deadline.Token);
            Assert.NotNull(e);
            if (e.Value.Data == "[DONE]")
            {
                break;
            }
            using var json = JsonDocument.Parse(e.Value.Data);
            var delta = json.RootElement.GetProperty("choices")[0].GetProperty("delta");
            // The last chunk carries finish_reason and an empty delta; count the ones with text.
            if (delta.TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 })
            {
                text.Append(content.GetString());
                chunks++;
            }
        }
        Assert.Equal("Hello from b1! This is a streamed answer.", text.ToString());
        Assert.Equal(8, chunks); // one per word
        Assert.Null(await reader.ReadAsync(deadline.Token));
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
