using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// How the gateway relays the ways a backend may frame its answer (RFC 9112 §6–§7): interim 1xx
/// heads, close-delimited bodies, Transfer-Encoding over Content-Length, no-body statuses, short
/// bodies and garbage. A scripted HTTP/1.1 server on loopback answers each request with the raw
/// bytes a test gives it, so every case is exact. Every case runs against both request paths
/// (the HTTP/1.1 fast path and, with HTTP1_FAST_PATH=off, Kestrel + SocketsHttpHandler): they
/// must answer alike.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public abstract class UpstreamFramingTests : IAsyncLifetime
{
    private readonly ScriptedBackend _backend = new();
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("scripted", _backend.Url, 1)),
            new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = "k-framing", ["HEALTH_CHECK_INTERVAL"] = "3600", ["PASSIVE_FAILURE_THRESHOLD"] = "1000",
                ["STREAM_IDLE_TIMEOUT"] = "1", ["HTTP1_FAST_PATH"] = FastPath ? "on" : "off",
            });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        _backend.Dispose();
    }

    protected abstract bool FastPath { get; }

    /// <summary>
    /// Transfer-Encoding with Content-Length (RFC 9112 §6.3 (3)): the coding wins, the length is
    /// dropped and the upstream connection is not reused. (The general path relayed the length and
    /// Kestrel aborted the response on the mismatch, until these cases ran against it too.)
    /// </summary>
    [Theory]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", null)]
    [InlineData("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew", false, 201, "new", null)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close", true, 200, "until the close", "chunked")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false, 200, "hello world", "chunked")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n", false, 200, "abc", "chunked")]
    [InlineData("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n", false, 204, "", null)]
    [InlineData("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}", false, 404, "{\"error\":\"x\"}", null)]
    public async Task Backend_framings_are_relayed_exactly(string answer, bool closeAfter, int status, string body, string? transferEncoding)
    {
        _backend.Answer = (Encoding.ASCII.GetBytes(answer), closeAfter);
        await using var connection = await RawConnection.OpenAsync(_gateway.Port);

        await connection.WriteAsync("GET /svc/m/framing HTTP/1.1\nHost: gw\nAuthorization: Bearer k-framing");
        var response = await connection.ReadResponseAsync();
        // The client connection is still usable afterwards.
        _backend.Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"u8.ToArray(), false);
        await connection.WriteAsync("GET /svc/m/again HTTP/1.1\nHost: gw\nAuthorization: Bearer k-framing");
        var next = await connection.ReadResponseAsync();

        Assert.True(response.Status == status, response.ToString());
        Assert.Equal(body, response.BodyText);
        Assert.Equal(transferEncoding, response.Header("Transfer-Encoding"));
        Assert.False(response.HasHeader("Connection") && response.Header("Connection")!.Contains("close", StringComparison.OrdinalIgnoreCase), response.ToString());
        Assert.Equal("next", next.BodyText);
    }

    /// <summary>
    /// RFC 9112 §6.3 (5): a proxy that receives differing Content-Length values "MUST close the
    /// connection to the server, discard the received response, and send a 502". (The general path
    /// answered 500 here until these cases ran against it too: Kestrel refused the header.)
    /// </summary>
    [Theory]
    [InlineData("not http at all\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok")]
    [InlineData("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")]
    public async Task A_malformed_backend_answer_is_a_502_in_the_gateway_shape(string answer)
    {
        _backend.Answer = (Encoding.ASCII.GetBytes(answer), true);

        var response = await RawHttp.SendAsync(_gateway.Port, "GET /svc/m/bad HTTP/1.1\nHost: gw\nAuthorization: Bearer k-framing\nX-Request-ID: framing-502");

        Assert.True(response.Status == 502, response.ToString());
        Assert.Contains("\"request_id\":\"framing-502\"", response.BodyText, StringComparison.Ordinal);
    }

    /// <summary>
    /// An event stream that goes silent after a complete chunk: the gateway waits for the next one
    /// without a buffer (a zero-byte read) and, when STREAM_IDLE_TIMEOUT passes, says so in an
    /// `event: error` frame and ends the response abortively — the wait's timeout is the
    /// backend's failure, never mistaken for the client leaving.
    /// </summary>
    [Fact]
    public async Task A_stream_silent_between_chunks_gets_the_idle_timeout_error_event()
    {
        _backend.Answer = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\ne\r\ndata: hello\n\n"u8.ToArray(), false);
        await using var connection = await RawConnection.OpenAsync(_gateway.Port);

        await connection.WriteAsync("GET /svc/m/silent HTTP/1.1\nHost: gw\nAuthorization: Bearer k-framing\nX-Request-ID: silent-1");
        var (bytes, reset) = await connection.ReadUntilClosedAsync();
        var received = Encoding.ASCII.GetString(bytes);

        Assert.Contains("data: hello", received, StringComparison.Ordinal);
        Assert.Contains("event: error", received, StringComparison.Ordinal);
        Assert.Contains("idle_timeout", received, StringComparison.Ordinal);
        Assert.Contains("silent-1", received, StringComparison.Ordinal);
        // Abortive: no chunked terminator after the error event (a reset, or a close without one).
        Assert.DoesNotContain("\r\n0\r\n\r\n", received, StringComparison.Ordinal);
        Assert.True(reset || !received.EndsWith("\r\n\r\n", StringComparison.Ordinal), received);
    }

    [Fact]
    public async Task A_body_shorter_than_its_length_ends_the_client_connection_instead_of_passing_for_complete()
    {
        _backend.Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"u8.ToArray(), true);
        await using var connection = await RawConnection.OpenAsync(_gateway.Port);

        await connection.WriteAsync("GET /svc/m/short HTTP/1.1\nHost: gw\nAuthorization: Bearer k-framing");

        // The head and the five bytes arrive; then the connection ends, so the client sees a truncated body, never a clean one.
        await Assert.ThrowsAnyAsync<IOException>(() => connection.ReadResponseAsync());
    }
}

/// <summary>The cases on the HTTP/1.1 fast path.</summary>
public sealed class UpstreamFramingFastPathTests : UpstreamFramingTests
{
    protected override bool FastPath => true;
}

/// <summary>The same cases on the general path (Kestrel's HTTP stack and SocketsHttpHandler).</summary>
public sealed class UpstreamFramingGeneralPathTests : UpstreamFramingTests
{
    protected override bool FastPath => false;
}
