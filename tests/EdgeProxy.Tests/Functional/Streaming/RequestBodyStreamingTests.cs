using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Streaming;

/// <summary>Request bodies stream upstream too (no full buffering of uploads); `Expect: 100-continue` works.</summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class RequestBodyStreamingTests(ITestOutputHelper output)
{
    /// <summary>
    /// Deadlock-style: the client sends half a chunked body and then waits until the backend is
    /// handling the request before sending the rest. A gateway that reads the whole body before
    /// forwarding never lets the backend see the request, and the test fails by its timeout.
    /// </summary>
    [Fact]
    public async Task The_backend_starts_receiving_before_the_client_finished_sending()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));
        var half = RandomNumberGenerator.GetBytes(256 * 1024);

        var content = new GatedContent(half, async () =>
            await Poll.UntilAsync(async () => (await backend.StatsAsync()).PathCount("/upload") == 1, TimeSpan.FromSeconds(15),
                "the backend to receive the request while the client still holds back half of the body"));
        using var response = await gateway.Client.PostAsync(gateway.BaseUrl + "/svc/m/upload", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(2L * half.Length, json.RootElement.GetProperty("body_length").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData([.. half, .. half])), json.RootElement.GetProperty("body_sha256").GetString());
    }

    /// <summary>
    /// A 192 MB chunked upload passes through while the gateway's RSS grows by far less than the body
    /// (bound 96 MB: half the body; the copy loop needs 64 KiB). A buffering gateway grows by the body.
    /// </summary>
    [Fact]
    public async Task A_large_upload_streams_through_without_growing_the_gateway()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));
        const long size = 192L * 1024 * 1024;
        using var warm = await gateway.Client.PostAsync(gateway.BaseUrl + "/svc/m/upload", new ByteArrayContent(new byte[1024]));
        var before = ProcessMemory.ResidentKb(gateway.ProcessId)!.Value;

        var peak = before;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                peak = Math.Max(peak, ProcessMemory.ResidentKb(gateway.ProcessId) ?? 0);
                await Task.Delay(20);
            }
        });
        var (content, sha) = PatternContent.Create(size);
        using var client = TestHttp.Create(timeout: TimeSpan.FromSeconds(60));
        using var response = await client.PostAsync(gateway.BaseUrl + "/svc/m/upload", content);
        await stop.CancelAsync();
        await sampler;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(size, json.RootElement.GetProperty("body_length").GetInt64());
        Assert.Equal(sha(), json.RootElement.GetProperty("body_sha256").GetString());
        var growthMb = (peak - before) / 1024.0;
        output.WriteLine($"gateway RSS {before / 1024} MB before, peak {peak / 1024} MB during a {size >> 20} MB upload (+{growthMb:0.0} MB)");
        Assert.True(growthMb < 96, $"gateway RSS grew by {growthMb:0} MB during a {size >> 20} MB upload");
    }

    [Fact]
    public async Task Expect_100_continue_upload_is_answered_with_the_right_hash()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)));
        var body = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);

        // HttpClient sends the body anyway if no "100 Continue" comes within Expect100ContinueTimeout
        // (default 1 s). 30 s here: the body only goes out fast if the gateway really answers 100.
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, Expect100ContinueTimeout = TimeSpan.FromSeconds(30) }) { Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(HttpMethod.Post, gateway.BaseUrl + "/svc/m/upload") { Content = new ByteArrayContent(body) };
        request.Headers.ExpectContinue = true;
        var watch = Stopwatch.StartNew();
        using var response = await client.SendAsync(request);
        var elapsed = watch.Elapsed;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(body.Length, json.RootElement.GetProperty("body_length").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(body)), json.RootElement.GetProperty("body_sha256").GetString());
        output.WriteLine($"8 MB upload with Expect: 100-continue took {elapsed.TotalMilliseconds:0} ms");
        Assert.True(elapsed < TimeSpan.FromSeconds(15), $"took {elapsed.TotalSeconds:0.0} s: the client waited for a 100 Continue that never came");
    }

    /// <summary>Chunked body: the first part, then (after <c>beforeRest</c>) the same bytes again.</summary>
    private sealed class GatedContent(byte[] part, Func<Task> beforeRest) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            await stream.WriteAsync(part);
            await stream.FlushAsync();
            await beforeRest();
            await stream.WriteAsync(part);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false; // chunked
        }
    }
}

/// <summary>A generated chunked body of any size (no array of that size), with its SHA-256.</summary>
internal static class PatternContent
{
    public static (HttpContent Content, Func<string> Sha256) Create(long size)
    {
        var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var content = new StreamContent(new PatternStream(size, hash), 64 * 1024);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return (new ChunkedWrapper(content), () => Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>Hides the length so the body is sent chunked.</summary>
    private sealed class ChunkedWrapper(HttpContent inner) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => inner.CopyToAsync(stream);

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    private sealed class PatternStream(long size, IncrementalHash hash) : Stream
    {
        private long _position;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, size - _position);
            for (var i = 0; i < n; i++)
            {
                buffer[i] = unchecked((byte)((_position + i) * 31 + 7));
            }
            hash.AppendData(buffer[..n]);
            _position += n;
            return n;
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => size;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
