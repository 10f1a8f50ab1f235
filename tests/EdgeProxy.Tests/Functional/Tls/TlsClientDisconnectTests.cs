using System.Diagnostics;
using System.Net;
using EdgeProxy.Tests.Functional.Streaming;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Tls;

/// <summary>
/// An HTTP/1.1 client that closes its TLS connection mid-stream cancels the upstream request
/// within <see cref="AbortBounds"/>, on both transports: TLS on the epoll socket and Kestrel's TLS
/// middleware on the socket transport. (HTTP/2's stream reset is in <see cref="Http2TlsTests"/>.)
/// </summary>
[Collection(StreamingSerialCollection.Name)]
[Trait(Matrix.Trait, Matrix.Variants)]
public sealed class TlsClientDisconnectTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    public async Task Http11_client_leaving_a_tls_stream_cancels_the_upstream_request(string variantName)
    {
        var variant = GatewayVariant.Parse(variantName);
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var tls = await TlsGateway.StartAsync(BackendsJson.For("svc", "m", ("b1", backend.Url, 1)), variant.Apply());
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var delays = new List<double>();
        for (var run = 0; run < 3; run++)
        {
            // A new connection each time: closing an unfinished HTTP/1.1 response closes its connection.
            using var client = tls.Pki.CreateClient(HttpVersion.Version11);
            var tag = $"tls-h1-{run}-{Guid.NewGuid():N}"[..20];
            var response = await client.GetAsync($"{tls.BaseUrl}/svc/m/sse-forever?tag={tag}&delayMs=50", HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            Assert.Equal(HttpVersion.Version11, response.Version);
            var body = await response.Content.ReadAsStreamAsync(deadline.Token);
            Assert.Equal(1, await body.ReadAsync(new byte[1], deadline.Token));
            var closedAt = Stopwatch.GetTimestamp();
            response.Dispose();
            client.Dispose();
            delays.Add(await AbortBounds.DelayAsync(backend, tag, closedAt));
        }
        output.WriteLine($"{variant}: client close over TLS -> upstream abort: {string.Join(", ", delays.Select(d => d.ToString("0.0")))} ms");
        AbortBounds.Check(delays, "the TLS client closed");
        await Poll.UntilAsync(async () => (await backend.StatsAsync()).InFlight() == 0, TimeSpan.FromSeconds(10), "the backend handlers to end");
    }
}
