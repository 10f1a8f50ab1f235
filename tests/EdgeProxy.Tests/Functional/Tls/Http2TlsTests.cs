using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EdgeProxy.Tests.Functional.Streaming;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Tls;

/// <summary>
/// HTTP/2 over TLS end to end: streamed SSE and NDJSON event by event, a stream reset (RST_STREAM)
/// cancelling the upstream request while the connection's other streams go on, request bodies,
/// many concurrent streams on one connection, and the limits and error frames of HTTP/1.1.
/// Every client here asks for HTTP/2 exactly (no fallback) and trusts only the test root. The
/// class reruns on the socket transport (Kestrel's TLS) as well as epoll (OpenSSL on the socket).
/// </summary>
[Collection(StreamingSerialCollection.Name)]
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class Http2TlsTests(ITestOutputHelper output)
{
    private const string Key = "gw-key";

    private static readonly Dictionary<string, string> Auth = new() { ["BACKEND_API_KEY"] = Key };

    private static HttpClient Client(TlsGateway tls, Action<SocketsHttpHandler>? configure = null)
    {
        var client = tls.Pki.CreateClient(HttpVersion.Version20, configure: configure);
        client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        return client;
    }

    [Fact]
    public async Task Http2_sse_arrives_event_by_event()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), Auth);
        using var client = Client(tls);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        const int events = 5;
        var gate = "h2-" + Guid.NewGuid().ToString("N")[..8];
        using var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/sse-gated?events={events}&gate={gate}&timeoutMs=10000",
            HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        for (var k = 0; k < events; k++)
        {
            // Event k+1 does not exist until event k is acknowledged: a buffering gateway never delivers k.
            var next = await reader.ReadAsync(deadline.Token);
            Assert.NotNull(next);
            using var json = JsonDocument.Parse(next.Value.Data);
            Assert.Equal(k, json.RootElement.GetProperty("i").GetInt32());
            await backend.AckAsync(gate, k);
        }
        Assert.Equal("[DONE]", (await reader.ReadAsync(deadline.Token))?.Data);
        Assert.Null(await reader.ReadAsync(deadline.Token));
    }

    [Fact]
    public async Task Http2_ndjson_lines_arrive_as_they_are_sent()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), Auth);
        using var client = Client(tls);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        const int lines = 4;
        const int delayMs = 300;
        using var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/ndjson?lines={lines}&delayMs={delayMs}", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        var arrivals = new List<long>();
        for (var k = 0; k < lines; k++)
        {
            var line = await reader.ReadLineAsync(deadline.Token);
            Assert.NotNull(line);
            arrivals.Add(Stopwatch.GetTimestamp());
            Assert.Equal(k, JsonDocument.Parse(line).RootElement.GetProperty("i").GetInt32());
        }
        Assert.Null(await reader.ReadLineAsync(deadline.Token));
        // A lower bound only (a slow box cannot fail it): buffered lines would arrive together at the end.
        var spreadMs = (arrivals[^1] - arrivals[0]) * 1000.0 / Stopwatch.Frequency;
        Assert.True(spreadMs >= (lines - 1) * delayMs * 0.5, $"lines arrived within {spreadMs:0} ms: held back");
    }

    [Fact]
    public async Task Http2_stream_reset_cancels_the_upstream_request_and_the_connection_goes_on()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), Auth);
        var connections = 0;
        using var client = Client(tls, h => h.ConnectCallback = async (context, token) =>
        {
            Interlocked.Increment(ref connections);
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, context.DnsEndPoint.Port, token);
            return new NetworkStream(socket, ownsSocket: true);
        });
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var delays = new List<double>();
        for (var run = 0; run < 3; run++)
        {
            var tag = $"h2-rst-{run}-{Guid.NewGuid():N}"[..20];
            var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/sse-forever?tag={tag}&delayMs=50", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            Assert.Equal(HttpVersion.Version20, response.Version);
            var body = await response.Content.ReadAsStreamAsync(deadline.Token);
            Assert.Equal(1, await body.ReadAsync(new byte[1], deadline.Token));
            // Disposing an unfinished HTTP/2 response sends RST_STREAM(CANCEL); the connection stays open.
            var closedAt = Stopwatch.GetTimestamp();
            response.Dispose();
            delays.Add(await AbortBounds.DelayAsync(backend, tag, closedAt));

            // Another stream on the same connection still works.
            using var ok = await client.GetAsync($"{tls.BaseUrl}/svc/m/v1/models", deadline.Token);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        output.WriteLine($"RST_STREAM -> upstream abort: {string.Join(", ", delays.Select(d => d.ToString("0.0")))} ms");
        Assert.Equal(1, connections);
        AbortBounds.Check(delays, "the stream reset");
        await Poll.UntilAsync(async () => (await backend.StatsAsync()).InFlight() == 0, TimeSpan.FromSeconds(10), "the backend handlers to end");
        await Poll.UntilAsync(() => tls.Gateway.Output.Lines.Count(l => l.Contains("client went away", StringComparison.Ordinal)) >= 3,
            TimeSpan.FromSeconds(5), "a 'client went away' log line per reset");
    }

    [Fact]
    public async Task Http2_request_bodies_are_forwarded_whole()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), Auth);
        using var client = Client(tls);
        foreach (var size in new[] { 0, 1, 100_000, 3 * 1024 * 1024 + 17 })
        {
            var body = new byte[size];
            Random.Shared.NextBytes(body);
            using var content = new ByteArrayContent(body);
            using var response = await client.PostAsync(tls.BaseUrl + "/svc/m/upload", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(size, json.RootElement.GetProperty("body_length").GetInt64());
            Assert.Equal(Convert.ToHexString(SHA256.HashData(body)), json.RootElement.GetProperty("body_sha256").GetString(), ignoreCase: true);
        }

        // A chat completion, the way SDKs send it.
        using var chat = new StringContent("""{"model":"test-model","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");
        using var answer = await client.PostAsync(tls.BaseUrl + "/svc/m/v1/chat/completions", chat);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Contains("Hello from b1!", await answer.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Http2_many_concurrent_streams_share_one_connection()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), Auth);
        var connections = 0;
        using var client = Client(tls, h =>
        {
            h.EnableMultipleHttp2Connections = false;
            h.ConnectCallback = async (context, token) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(IPAddress.Loopback, context.DnsEndPoint.Port, token);
                return new NetworkStream(socket, ownsSocket: true);
            };
        });
        (await client.GetAsync(tls.BaseUrl + "/health")).EnsureSuccessStatusCode();
        const int streams = 64;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var results = await Task.WhenAll(Enumerable.Range(0, streams).Select(async i =>
        {
            using var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/sse?events=5&delayMs=50&n={i}", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            Assert.Equal(HttpVersion.Version20, response.Version);
            var text = await response.Content.ReadAsStringAsync(deadline.Token);
            return text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Length;
        }));
        Assert.All(results, n => Assert.Equal(6, n));   // 5 events and [DONE] on every stream
        Assert.Equal(1, connections);
        // The streams overlapped at the backend (they did not run one after another).
        Assert.Equal(streams, (await backend.StatsAsync()).PathCount("/sse"));
    }

    [Fact]
    public async Task Http2_has_the_same_limits_and_error_answers_as_http11()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)),
            new Dictionary<string, string>(Auth) { ["MAX_REQUEST_BODY_MB"] = "1" });
        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var client = Client(tls);
            client.DefaultRequestVersion = version;

            // Too large a body: 413.
            using (var big = new ByteArrayContent(new byte[2 * 1024 * 1024]))
            using (var response = await client.PostAsync(tls.BaseUrl + "/svc/m/upload", big))
            {
                Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            }

            // No key: 401 with the gateway's JSON error.
            using (var anonymous = tls.Pki.CreateClient(version))
            using (var response = await anonymous.GetAsync(tls.BaseUrl + "/svc/m/v1/models"))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.True(json.RootElement.TryGetProperty("error", out _));
                Assert.True(json.RootElement.TryGetProperty("request_id", out _));
            }

            // Unknown model: 404.
            using (var response = await client.GetAsync(tls.BaseUrl + "/svc/nope/v1/models"))
            {
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            }

            // A backend that fails mid-stream: the SSE error frame, then an abortive end (RST_STREAM on h2, a reset on HTTP/1.1).
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using (var response = await client.GetAsync(tls.BaseUrl + "/svc/m/reset?after=300&type=sse", HttpCompletionOption.ResponseHeadersRead, deadline.Token))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(version, response.Version);
                var reader = new SseReader(await response.Content.ReadAsStreamAsync(deadline.Token));
                SseEvent? error = null;
                var ended = await Record.ExceptionAsync(async () =>
                {
                    for (var i = 0; i < 1000; i++)
                    {
                        var e = await reader.ReadAsync(deadline.Token);
                        if (e is null)
                        {
                            return;
                        }
                        if (e.Value.Event == "error")
                        {
                            error = e;
                        }
                    }
                });
                Assert.NotNull(error);
                using var json = JsonDocument.Parse(error.Value.Data);
                Assert.Equal("upstream_reset", json.RootElement.GetProperty("error").GetProperty("code").GetString());
                output.WriteLine($"{version}: stream ended with {ended?.GetType().Name ?? "a clean end"}: {ended?.Message}");
                Assert.NotNull(ended);   // never a silent clean end
            }
        }
    }
}
