using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// The HTTP/1.1 fast path (a connection middleware relaying plain proxy requests on
/// Kestrel's transport). What it takes it must relay exactly like the general path; what it does
/// not take must reach Kestrel unconsumed, on the same connection; bad input is always the general
/// path's to reject (Kestrel, then the dispatcher's admission by the same rules the fast path parses
/// with). `edgeproxy_fast_path_requests_total` tells which path served a request.
/// </summary>
public sealed partial class FastPathTests(EchoGatewayFixture fixture) : IClassFixture<EchoGatewayFixture>
{
    private int Port => fixture.Gateway.Port;

    private static string Key => EchoGatewayFixture.GatewayKey;

    [Fact]
    public async Task Plain_proxy_requests_are_relayed_by_the_fast_path()
    {
        var before = await FastPathCountAsync();
        // A client of its own: a connection that once carried a request the fast path declined
        // (the /metrics scrapes here) stays with Kestrel's HTTP stack until it closes.
        using var client = TestHttp.Create();

        using var get = new HttpRequestMessage(HttpMethod.Get, fixture.Gateway.BaseUrl + "/svc/m/echo/fast?q=a%2Fb+c");
        get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        get.Headers.Add("X-Custom", "kept");
        using var getResponse = await client.SendAsync(get);
        var getEcho = await EchoBody.ReadAsync(getResponse);
        using var post = new HttpRequestMessage(HttpMethod.Post, fixture.Gateway.BaseUrl + "/svc/prefixed/fast")
        {
            Content = new StringContent("""{"model":"m"}""", Encoding.UTF8, "application/json"),
        };
        post.Headers.Add("X-API-Key", Key);
        using var postResponse = await client.SendAsync(post);
        var postEcho = await EchoBody.ReadAsync(postResponse);

        Assert.Equal(before + 2, await FastPathCountAsync());
        Assert.Equal("/echo/fast?q=a%2Fb+c", getEcho.RawTarget);
        Assert.Equal("kept", getEcho.HeaderText("x-custom"));
        // The backend's own key (here the global key, contract: BACKEND_API_KEY when it has none).
        Assert.Equal($"Bearer {Key}", getEcho.HeaderText("authorization"));
        Assert.Equal("127.0.0.1", getEcho.HeaderText("x-forwarded-for"));
        Assert.Equal("127.0.0.1", getEcho.HeaderText("x-real-ip"));
        Assert.Equal("http", getEcho.HeaderText("x-forwarded-proto"));
        Assert.Equal($"127.0.0.1:{Port}", getEcho.HeaderText("x-forwarded-host"));
        Assert.Equal(getResponse.Headers.GetValues("X-Request-ID").Single(), getEcho.HeaderText("x-request-id"));
        Assert.True(getResponse.Headers.Date.HasValue, "no Date header");
        Assert.Equal("POST", postEcho.Method);
        Assert.Equal("/echo/fast", postEcho.RawTarget);
        Assert.Null(postEcho.Header("x-api-key"));
        Assert.Equal(Bodies.Sha256("""{"model":"m"}"""u8.ToArray()), postEcho.BodySha256);
        Assert.Equal("application/json; charset=utf-8", postEcho.HeaderText("content-type"));
    }

    /// <summary>Requests outside the fast path's shape reach Kestrel and the dispatcher, which answer as always.</summary>
    [Theory]
    [InlineData("GET /health HTTP/1.1\nHost: gw", 200)]
    [InlineData("GET /svc/m/echo/x HTTP/1.1\nHost: gw", 401)]
    [InlineData("GET /svc/m/echo/x HTTP/1.1\nHost: gw\nAuthorization: Bearer wrong", 401)]
    [InlineData("GET /svc/nope/echo HTTP/1.1\nHost: gw\nAuthorization: Bearer {key}", 404)]
    [InlineData("GET /svc/m/a/../b HTTP/1.1\nHost: gw\nAuthorization: Bearer {key}", 400)]
    [InlineData("GET /svc/m/echo/x HTTP/1.0\nHost: gw\nAuthorization: Bearer {key}", 200)]
    [InlineData("GET /svc/m/echo/x HTTP/1.1\nHost: gw\nAuthorization: Bearer {key}\nOrigin: http://app.example", 200)]
    [InlineData("OPTIONS /svc/m/echo/x HTTP/1.1\nHost: gw\nOrigin: http://app.example\nAccess-Control-Request-Method: POST", 204)]
    [InlineData("GET /svc/m/echo/x HTTP/1.1\nHost: gw\nAuthorization: Bearer {key}\nTE: trailers", 200)]
    [InlineData("TRACE /svc/m/echo/x HTTP/1.1\nHost: gw\nAuthorization: Bearer {key}", 405)]
    public async Task Requests_the_fast_path_does_not_take_are_answered_by_the_general_path(string head, int status)
    {
        var before = await FastPathCountAsync();

        var response = await RawHttp.SendAsync(Port, head.Replace("{key}", Key));

        Assert.True(response.Status == status, response.ToString());
        Assert.Equal(before, await FastPathCountAsync());
    }

    /// <summary>
    /// Malformed requests are never relayed by the fast path: it declines anything it does not
    /// parse cleanly, and Kestrel decides (RFC 9112 §2.2, §5, §6.3) — 400 before a byte reaches a
    /// backend, except a bare LF line end, which Kestrel accepts (its default) and serves itself.
    /// </summary>
    [Theory]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nX-A: 1\r\n  folded\r\n\r\n", 400)]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nX-A : 1\r\n\r\n", 400)]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nX-A: 1\n\r\n", 200)]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nAuthorization: Bearer {key}\r\n\r\n", 400)]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nHost: other\r\nAuthorization: Bearer {key}\r\n\r\n", 400)]
    [InlineData("POST /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nContent-Length: abc\r\n\r\n", 400)]
    [InlineData("POST /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400)]
    [InlineData("GET /svc/m/echo/bad HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nX-A: caf\u00e9\r\n\r\n", 400)]
    [InlineData("GET /svc/m/echo/b\u00e4d HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\r\n", 400)]
    public async Task Malformed_requests_are_left_to_kestrel(string raw, int status)
    {
        var before = await FastPathCountAsync();
        await using var connection = await RawConnection.OpenAsync(Port);

        await connection.WriteAsync(Encoding.Latin1.GetBytes(raw.Replace("{key}", Key)));
        var response = await connection.ReadResponseAsync();

        Assert.True(response.Status == status, response.ToString());
        Assert.Equal(before, await FastPathCountAsync());
    }

    [Fact]
    public async Task One_connection_moves_from_the_fast_path_to_kestrel_and_keeps_working()
    {
        var before = await FastPathCountAsync();
        await using var connection = await RawConnection.OpenAsync(Port);
        var proxied = $"GET /svc/m/echo/one HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}";

        await connection.WriteAsync(proxied);
        var first = await connection.ReadResponseAsync();
        await connection.WriteAsync("GET /health HTTP/1.1\nHost: gw");
        var health = await connection.ReadResponseAsync();
        await connection.WriteAsync(proxied);
        var third = await connection.ReadResponseAsync();

        Assert.True(first.Status == 200, first.ToString());
        Assert.Contains("\"status\":\"ok\"", health.BodyText, StringComparison.Ordinal);
        Assert.True(third.Status == 200, third.ToString());
        Assert.Equal("/echo/one", EchoBody.Parse(third.BodyText).RawTarget);
        // The first went the fast way; from the declined request on, the connection is Kestrel's.
        Assert.Equal(before + 1, await FastPathCountAsync());
    }

    [Fact]
    public async Task Pipelined_requests_are_answered_in_order_with_their_bodies()
    {
        var before = await FastPathCountAsync();
        await using var connection = await RawConnection.OpenAsync(Port);
        var bodies = new[] { "first body", "the second, longer body", "" };
        var wire = new List<byte>();
        for (var i = 0; i < bodies.Length; i++)
        {
            wire.AddRange(RawHttp.Head($"POST /svc/m/echo/p{i} HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Length: {bodies[i].Length}"));
            wire.AddRange(Encoding.ASCII.GetBytes(bodies[i]));
        }

        await connection.WriteAsync(wire.ToArray());
        var echoes = new List<EchoBody>();
        for (var i = 0; i < bodies.Length; i++)
        {
            var response = await connection.ReadResponseAsync();
            Assert.True(response.Status == 200, response.ToString());
            echoes.Add(EchoBody.Parse(response.BodyText));
        }

        for (var i = 0; i < bodies.Length; i++)
        {
            Assert.Equal($"/echo/p{i}", echoes[i].RawTarget);
            Assert.Equal(Bodies.Sha256(Encoding.ASCII.GetBytes(bodies[i])), echoes[i].BodySha256);
        }
        Assert.Equal(before + bodies.Length, await FastPathCountAsync());
    }

    [Fact]
    public async Task A_large_body_arriving_in_pieces_is_streamed_to_the_backend_intact()
    {
        var body = new byte[3 * 1024 * 1024 + 17];
        new Random(6).NextBytes(body);
        var before = await FastPathCountAsync();
        await using var connection = await RawConnection.OpenAsync(Port);

        await connection.WriteAsync($"POST /svc/m/echo/big HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/octet-stream\nContent-Length: {body.Length}");
        for (var offset = 0; offset < body.Length; offset += 256 * 1024)
        {
            await connection.WriteAsync(body[offset..Math.Min(body.Length, offset + 256 * 1024)]);
            await Task.Delay(5);
        }
        var response = await connection.ReadResponseAsync();

        Assert.True(response.Status == 200, response.ToString());
        var echo = EchoBody.Parse(response.BodyText);
        Assert.Equal(body.Length, echo.BodyLength);
        Assert.Equal(Bodies.Sha256(body), echo.BodySha256);
        Assert.Equal(before + 1, await FastPathCountAsync());
    }

    [Fact]
    public async Task Connection_close_is_answered_with_close_and_the_connection_ends()
    {
        await using var connection = await RawConnection.OpenAsync(Port);

        await connection.WriteAsync($"GET /svc/m/echo/close HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close");
        var response = await connection.ReadResponseAsync();
        var rest = await connection.ReadToEndAsync();

        Assert.True(response.Status == 200, response.ToString());
        Assert.Equal("close", response.Header("Connection"));
        Assert.Empty(rest);
    }

    [Fact]
    public async Task HEAD_gets_the_headers_and_no_body_and_the_connection_stays_usable()
    {
        await using var connection = await RawConnection.OpenAsync(Port);

        await connection.WriteAsync($"HEAD /svc/m/echo/head HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}");
        var head = await connection.ReadResponseAsync(isHead: true);
        await connection.WriteAsync($"GET /svc/m/echo/after-head HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}");
        var next = await connection.ReadResponseAsync();

        Assert.True(head.Status == 200, head.ToString());
        Assert.NotNull(head.Header("Content-Length"));
        Assert.Empty(head.Body);
        Assert.True(next.Status == 200, next.ToString());
        Assert.Equal("/echo/after-head", EchoBody.Parse(next.BodyText).RawTarget);
    }

    [Fact]
    public async Task Event_streams_are_relayed_chunked_with_the_stream_headers()
    {
        var before = await FastPathCountAsync();

        var response = await RawHttp.SendAsync(Port, $"GET /svc/m/sse?events=3 HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}");

        Assert.True(response.Status == 200, response.ToString());
        Assert.Equal("chunked", response.Header("Transfer-Encoding"));
        Assert.Equal("no", response.Header("X-Accel-Buffering"));
        Assert.Equal("no-cache", response.Header("Cache-Control"));
        Assert.StartsWith("text/event-stream", response.Header("Content-Type"), StringComparison.Ordinal);
        Assert.Contains("data:", response.BodyText, StringComparison.Ordinal);
        Assert.Equal(before + 1, await FastPathCountAsync());
    }

    [Fact]
    public async Task A_dead_backend_gets_the_json_error_on_the_fast_path()
    {
        var before = await FastPathCountAsync();

        var response = await RawHttp.SendAsync(Port, $"GET /svc/dead/x HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nX-Request-ID: trace-fast-1");

        Assert.True(response.Status == 502, response.ToString());
        Assert.Equal("trace-fast-1", response.Header("X-Request-ID"));
        Assert.StartsWith("application/json", response.Header("Content-Type"), StringComparison.Ordinal);
        Assert.Contains("\"request_id\":\"trace-fast-1\"", response.BodyText, StringComparison.Ordinal);
        Assert.Equal(before + 1, await FastPathCountAsync());
    }

    private async Task<long> FastPathCountAsync()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Gateway.BaseUrl + "/metrics");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        using var response = await fixture.Gateway.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var match = FastPathLine().Match(text);
        return match.Success ? long.Parse(match.Groups[1].Value) : 0;
    }

    [GeneratedRegex(@"^edgeproxy_fast_path_requests_total (\d+)$", RegexOptions.Multiline)]
    private static partial Regex FastPathLine();
}

/// <summary>HTTP1_FAST_PATH=off: every request takes the general path, with the same answers.</summary>
public sealed class FastPathOffTests : IAsyncLifetime
{
    private BackendProcess _backend = null!;
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendProcess.StartAsync("off1");
        _gateway = await GatewayProcess.StartAsync(BackendsJson.ClientIpAffinity(BackendsJson.For("svc", "m", ("b1", _backend.Url, 1))),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k-off", ["HTTP1_FAST_PATH"] = "off" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task Proxy_requests_are_served_and_none_by_the_fast_path()
    {
        var response = await RawHttp.SendAsync(_gateway.Port, "GET /svc/m/echo/off HTTP/1.1\nHost: gw\nAuthorization: Bearer k-off");
        using var metrics = new HttpRequestMessage(HttpMethod.Get, _gateway.BaseUrl + "/metrics");
        metrics.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "k-off");
        var text = await (await _gateway.Client.SendAsync(metrics)).Content.ReadAsStringAsync();

        Assert.True(response.Status == 200, response.ToString());
        Assert.Equal("/echo/off", EchoBody.Parse(response.BodyText).RawTarget);
        Assert.Contains("edgeproxy_requests_total{", text, StringComparison.Ordinal);
        Assert.Contains("edgeproxy_fast_path_requests_total 0", text, StringComparison.Ordinal);
    }
}
