using System.Net;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Request and response bodies are streamed, in both directions, with and without
/// a declared length, and the gateway's memory does not grow with the body.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class LargeBodyTests(EchoGatewayFixture fixture, ITestOutputHelper output) : IClassFixture<EchoGatewayFixture>
{
    private const long MiB = 1024 * 1024;

    /// <summary>
    /// Peak RSS allowed while bodies far larger pass through. The JIT gateway idles at roughly
    /// 60–90 MB (runtime, JIT-compiled code, Kestrel and the upstream pool); the AOT binary well under
    /// that. A gateway that held a 256 MiB body (or even a large share of it) would exceed this bound,
    /// while copy buffers (tens of KiB per request) and GC slack stay far inside it.
    /// </summary>
    private const long PeakRssLimit = 150 * 1000 * 1000;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_8_MiB_upload_arrives_intact(bool withContentLength)
    {
        const long size = 8 * MiB;
        using var request = fixture.Authorized(HttpMethod.Post, $"/svc/m/echo/upload/{withContentLength}");
        request.Content = new PatternContent(size, announceLength: withContentLength);

        using var response = await fixture.Gateway.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await EchoBody.ReadAsync(response);
        Assert.Equal(size, echo.BodyLength);
        Assert.Equal(Bodies.DownloadPatternSha256(size), echo.BodySha256);
        if (withContentLength)
        {
            Assert.Equal(size.ToString(), echo.HeaderText("content-length"));
            Assert.Null(echo.Header("transfer-encoding"));
        }
        else
        {
            Assert.Equal("chunked", echo.HeaderText("transfer-encoding"));
            Assert.Null(echo.Header("content-length"));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_64_MiB_download_arrives_intact(bool chunked)
    {
        const long size = 64 * MiB;
        using var request = fixture.Authorized(HttpMethod.Get, $"/svc/m/download?bytes={size}" + (chunked ? "&chunked=1" : ""));

        using var response = await fixture.Gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(chunked ? null : size, response.Content.Headers.ContentLength);
        var (length, sha) = await Bodies.HashAsync(await response.Content.ReadAsStreamAsync());
        Assert.Equal(size, length);
        Assert.Equal(Bodies.DownloadPatternSha256(size), sha);
    }

    [Fact]
    public async Task Gateway_memory_stays_far_below_a_256_MiB_download()
    {
        const long size = 256 * MiB;
        using var client = TestHttp.Create(timeout: TimeSpan.FromSeconds(60));
        using var request = fixture.Authorized(HttpMethod.Get, $"/svc/m/download?bytes={size}");

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            total += n;
        }

        Assert.Equal(size, total);
        var peak = fixture.Gateway.PeakRssBytes;
        output.WriteLine($"gateway peak RSS after a {size / MiB} MiB download: {peak / MiB} MiB");
        Assert.True(peak < PeakRssLimit, $"gateway peak RSS {peak / MiB} MiB during a {size / MiB} MiB download");
    }

    [Fact]
    public async Task Gateway_memory_stays_far_below_a_200_MiB_upload()
    {
        // Below MAX_REQUEST_BODY_MB's 256 MiB default; chunked, so nothing tells the gateway the size up front.
        const long size = 200 * MiB;
        using var client = TestHttp.Create(timeout: TimeSpan.FromSeconds(60));
        using var request = fixture.Authorized(HttpMethod.Post, "/svc/m/upload");
        request.Content = new PatternContent(size, announceLength: false);

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains($"\"body_length\":{size}", await response.Content.ReadAsStringAsync());
        var peak = fixture.Gateway.PeakRssBytes;
        output.WriteLine($"gateway peak RSS after a {size / MiB} MiB upload: {peak / MiB} MiB");
        Assert.True(peak < PeakRssLimit, $"gateway peak RSS {peak / MiB} MiB during a {size / MiB} MiB upload");
    }
}
