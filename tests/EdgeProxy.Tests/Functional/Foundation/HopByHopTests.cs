using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// RFC 9110 §7.6.1: hop-by-hop headers, and headers the Connection header names,
/// are not forwarded in either direction; `TE: trailers` is. Raw sockets on the client side, so the
/// headers go out and come back exactly as written.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class HopByHopTests(EchoGatewayFixture fixture) : IClassFixture<EchoGatewayFixture>
{
    private int Port => fixture.Gateway.Port;

    [Fact]
    public async Task Request_hop_by_hop_headers_are_not_forwarded()
    {
        var response = await RawHttp.SendAsync(Port, $"""
            GET /svc/m/echo/hop HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            Connection: X-Foo, X-Bar
            X-Foo: 1
            X-Bar: 2
            Keep-Alive: timeout=5, max=100
            Proxy-Authorization: Basic cHJveHk6c2VjcmV0
            Proxy-Connection: keep-alive
            TE: trailers
            Upgrade: websocket
            X-End-To-End: yes
            """);

        Assert.True(response.Status == 200, response.ToString());
        var echo = EchoBody.Parse(response.BodyText);
        foreach (var name in new[] { "x-foo", "x-bar", "keep-alive", "proxy-authorization", "proxy-connection", "upgrade" })
        {
            Assert.True(echo.Header(name) is null, $"{name} was forwarded: {echo.HeaderText(name)}");
        }
        Assert.DoesNotContain("x-foo", echo.HeaderText("connection") ?? "", StringComparison.OrdinalIgnoreCase);
        Assert.Equal("trailers", echo.HeaderText("te"));
        Assert.Equal("yes", echo.HeaderText("x-end-to-end"));
    }

    /// <summary>Headers the client's Connection header names are hop-by-hop too (RFC 9110 §7.6.1).</summary>
    [Theory]
    [InlineData("X-Foo")]
    [InlineData("x-foo")]
    [InlineData("X-Other, X-Foo")]
    [InlineData("keep-alive, upgrade, X-Foo")]
    public async Task Headers_named_by_Connection_are_not_forwarded(string connection)
    {
        var echo = await EchoWithConnectionAsync(connection);

        Assert.Null(echo.Header("x-foo"));
        Assert.Equal("kept", echo.HeaderText("x-unnamed"));
    }

    /// <summary>
    /// The most common client form, `Connection: keep-alive, X-Foo`. Kestrel's own parser keeps only
    /// the interned keep-alive / close token of such a header; the general path reads the field as
    /// received (ConnectionFieldCapture) and the fast path reads the raw bytes. DifferentialTests
    /// holds every path and transport to this.
    /// </summary>
    [Theory]
    [InlineData("keep-alive, X-Foo")]
    [InlineData("close, X-Foo")]
    public async Task Headers_named_after_a_keep_alive_token_are_not_forwarded(string connection)
    {
        var echo = await EchoWithConnectionAsync(connection);

        Assert.Null(echo.Header("x-foo"));
    }

    private async Task<EchoBody> EchoWithConnectionAsync(string connection)
    {
        var response = await RawHttp.SendAsync(Port, $"""
            GET /svc/m/echo/connection HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            Connection: {connection}
            X-Foo: 1
            X-Unnamed: kept
            """);
        Assert.True(response.Status == 200, response.ToString());
        return EchoBody.Parse(response.BodyText);
    }

    [Theory]
    [InlineData("trailers", "trailers")]
    [InlineData("trailers, deflate", "trailers")]
    [InlineData("deflate;q=0.5, trailers", "trailers")]
    [InlineData("deflate", null)]
    [InlineData("gzip, deflate", null)]
    public async Task Only_the_trailers_token_of_TE_is_forwarded(string te, string? expected)
    {
        var response = await RawHttp.SendAsync(Port, $"""
            GET /svc/m/echo/te HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            TE: {te}
            """);

        Assert.True(response.Status == 200, response.ToString());
        Assert.Equal(expected, EchoBody.Parse(response.BodyText).HeaderText("te"));
    }

    [Fact]
    public async Task Clients_transfer_coding_is_not_copied_the_gateway_frames_the_body_itself()
    {
        var response = await RawHttp.SendAsync(Port, $"""
            POST /svc/m/echo/te-chunked HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            Transfer-Encoding: chunked
            """, Encoding.ASCII.GetBytes("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));

        Assert.True(response.Status == 200, response.ToString());
        var echo = EchoBody.Parse(response.BodyText);
        Assert.Equal(11, echo.BodyLength);
        Assert.Equal(Bodies.Sha256("hello world"u8.ToArray()), echo.BodySha256);
        // One framing, the gateway's own (it streams, so chunked): not the client's value added to it.
        Assert.Equal("chunked", echo.HeaderText("transfer-encoding"));
    }

    [Fact]
    public async Task A_request_with_Content_Length_is_not_sent_chunked()
    {
        var response = await RawHttp.SendAsync(Port, $"""
            POST /svc/m/echo/length HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            Content-Length: 11
            """, "hello world"u8.ToArray());

        Assert.True(response.Status == 200, response.ToString());
        var echo = EchoBody.Parse(response.BodyText);
        Assert.Equal("11", echo.HeaderText("content-length"));
        Assert.Null(echo.Header("transfer-encoding"));
    }

    /// <summary>/headers-out sends Keep-Alive, X-Hop (named by Connection), Proxy-Authenticate, Proxy-Connection, Upgrade, TE and X-Normal.</summary>
    [Theory]
    [InlineData("")]
    [InlineData("?connection=X-Hop")]
    public async Task Response_hop_by_hop_headers_are_not_returned(string query)
    {
        var response = await RawHttp.SendAsync(Port, $"""
            GET /svc/m/headers-out{query} HTTP/1.1
            Host: 127.0.0.1:{Port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            """);

        Assert.True(response.Status == 200, response.ToString());
        Assert.Equal("yes", response.Header("X-Normal"));
        foreach (var name in new[] { "Keep-Alive", "X-Hop", "Proxy-Authenticate", "Proxy-Connection", "Upgrade", "TE" })
        {
            Assert.False(response.HasHeader(name), $"{name} was returned:\n{response}");
        }
        var connection = response.Header("Connection") ?? "";
        Assert.DoesNotContain("X-Hop", connection, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Upgrade", connection, StringComparison.OrdinalIgnoreCase);
    }
}
