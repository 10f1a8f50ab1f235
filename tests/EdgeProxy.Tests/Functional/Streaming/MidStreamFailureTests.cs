using System.Net;
using System.Text;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Streaming;

/// <summary>
/// When the backend breaks after the response started, the client must not mistake
/// the truncated body for a complete one: SSE gets a final `event: error`, NDJSON a final
/// `{"error":…}` line, every body an abortive end — never a clean end. Each case runs several times
/// on one gateway because the error frame races the connection reset (the frame must leave before
/// Kestrel's Abort sends RST), and a race shows up as an occasional, not a constant, failure.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class MidStreamFailureTests
{
    private const int Repeats = 8;

    [Theory]
    [InlineData("sse", false)]
    [InlineData("sse", true)] // backend half-closes: the gateway sees a truncated chunked body, not a reset
    [InlineData("ndjson", false)]
    [InlineData("ndjson", true)]
    public async Task Event_streams_end_with_an_error_frame_naming_the_cause_then_abort(string type, bool fin)
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));

        for (var run = 0; run < Repeats; run++)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            using var response = await gateway.Client.GetAsync(
                $"{gateway.BaseUrl}/svc/m/reset?after=300&type={type}{(fin ? "&fin=1" : "")}", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var requestId = response.Headers.GetValues("X-Request-ID").Single();
            var sentBytes = int.Parse(response.Headers.GetValues("X-Sent-Bytes").Single());
            var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));

            // Everything the backend sent, in order, then the error frame.
            var received = new StringBuilder();
            JsonElement error = default;
            for (var k = 0; k < 100; k++)
            {
                string? payload;
                if (type == "sse")
                {
                    var e = await reader.ReadAsync(deadline.Token);
                    Assert.True(e is not null, $"run {run}: the stream ended cleanly after {received.Length} of {sentBytes} bytes, without an error event");
                    if (e.Value.Event == "error")
                    {
                        error = JsonDocument.Parse(e.Value.Data).RootElement.Clone();
                        break;
                    }
                    received.Append("data: ").Append(e.Value.Data).Append("\n\n");
                    payload = e.Value.Data;
                }
                else
                {
                    var line = await reader.ReadLineAsync(deadline.Token);
                    Assert.True(line is not null, $"run {run}: the stream ended cleanly after {received.Length} of {sentBytes} bytes, without an error line");
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.TryGetProperty("error", out _))
                    {
                        error = doc.RootElement.Clone();
                        break;
                    }
                    received.Append(line).Append('\n');
                    payload = line;
                }
                Assert.Contains($"\"i\":{k},", payload);
            }

            Assert.Equal(sentBytes, Encoding.UTF8.GetByteCount(received.ToString()));
            Assert.Equal(JsonValueKind.Object, error.ValueKind);
            var detail = error.GetProperty("error");
            Assert.Equal("upstream_reset", detail.GetProperty("code").GetString());
            Assert.Equal(requestId, detail.GetProperty("request_id").GetString());
            Assert.False(string.IsNullOrEmpty(detail.GetProperty("message").GetString()));

            // Then an abortive end, not a clean one.
            await Assert.ThrowsAnyAsync<IOException>(() => reader.ReadLineAsync(deadline.Token));
        }
        await gateway.Output.WaitForLineAsync(l => l.Contains("upstream_reset", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Other_bodies_end_abortively_without_a_clean_chunked_terminator(bool fin)
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));

        for (var run = 0; run < Repeats; run++)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            using var response = await gateway.Client.GetAsync(
                $"{gateway.BaseUrl}/svc/m/reset?after=5000&type=raw{(fin ? "&fin=1" : "")}", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
            var body = await response.Content.ReadAsStreamAsync(deadline.Token);
            var buffer = new byte[8192];
            long total = 0;
            var ended = await Assert.ThrowsAnyAsync<IOException>(async () =>
            {
                // Bounded by the body (5000 bytes) and the deadline.
                for (int read; (read = await body.ReadAsync(buffer, deadline.Token)) > 0;)
                {
                    total += read;
                }
            });
            Assert.True(total <= 5000, $"run {run}: got {total} bytes");
            Assert.NotNull(ended);
        }
    }
}
