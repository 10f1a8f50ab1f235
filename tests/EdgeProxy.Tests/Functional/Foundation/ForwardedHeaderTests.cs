using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// X-Forwarded-* and X-Real-IP are the gateway's own unless the TCP peer is a
/// trusted proxy (TRUSTED_PROXIES=127.0.0.9 here); X-Request-ID is the client's when well-formed,
/// else new, sent upstream and on every response. Client identities are distinct 127.x source
/// addresses; 203.0.113.7 is only ever a header value (TEST-NET-3), never contacted.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed partial class ForwardedHeaderTests(TrustedProxyFixture fixture) : IClassFixture<TrustedProxyFixture>
{
    private const string Untrusted = "127.0.0.5";
    private const string Trusted = TrustedProxyFixture.TrustedProxy;

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex GeneratedId();

    [Fact]
    public async Task An_untrusted_client_cannot_spoof_forwarding_headers()
    {
        var echo = await EchoFromAsync(Untrusted, new()
        {
            ["X-Forwarded-For"] = "203.0.113.7, 198.51.100.1",
            ["X-Forwarded-Proto"] = "https",
            ["X-Forwarded-Host"] = "evil.example",
            ["X-Real-IP"] = "203.0.113.7",
            ["Forwarded"] = "for=203.0.113.7;proto=https",
        });

        Assert.Equal(Untrusted, echo.HeaderText("x-forwarded-for"));
        Assert.Equal("http", echo.HeaderText("x-forwarded-proto"));
        Assert.Equal($"127.0.0.1:{fixture.Gateway.Port}", echo.HeaderText("x-forwarded-host"));
        Assert.Equal(Untrusted, echo.HeaderText("x-real-ip"));
        Assert.Null(echo.Header("forwarded"));
    }

    [Fact]
    public async Task Without_client_headers_the_peer_address_is_forwarded()
    {
        var echo = await EchoFromAsync("127.0.0.6", []);

        Assert.Equal("127.0.0.6", echo.HeaderText("x-forwarded-for"));
        Assert.Equal("127.0.0.6", echo.HeaderText("x-real-ip"));
        Assert.Equal("http", echo.HeaderText("x-forwarded-proto"));
    }

    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7, 127.0.0.9", "203.0.113.7")]
    [InlineData("203.0.113.7, 127.0.0.9", "203.0.113.7, 127.0.0.9, 127.0.0.9", "203.0.113.7")]
    [InlineData(null, "127.0.0.9", "127.0.0.9")]
    public async Task A_trusted_proxy_is_believed(string? clientForwardedFor, string expectedForwardedFor, string expectedRealIp)
    {
        var headers = new Dictionary<string, string> { ["X-Forwarded-Proto"] = "https", ["X-Forwarded-Host"] = "api.example" };
        if (clientForwardedFor is not null)
        {
            headers["X-Forwarded-For"] = clientForwardedFor;
        }

        var echo = await EchoFromAsync(Trusted, headers);

        Assert.Equal(expectedForwardedFor, echo.HeaderText("x-forwarded-for"));
        Assert.Equal(expectedRealIp, echo.HeaderText("x-real-ip"));
        Assert.Equal("https", echo.HeaderText("x-forwarded-proto"));
        Assert.Equal("api.example", echo.HeaderText("x-forwarded-host"));
    }

    [Theory]
    [InlineData("client-req-42")]
    [InlineData("a1B2_c3.d4:e5/f6+g7=h8@i9")]
    public async Task A_well_formed_request_id_is_propagated_and_echoed(string id)
    {
        using var request = fixture.Authorized(HttpMethod.Get, "/svc/m/echo/rid");
        request.Headers.TryAddWithoutValidation("X-Request-ID", id);

        using var response = await fixture.Gateway.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(id, Assert.Single(response.Headers.GetValues("X-Request-ID")));
        Assert.Equal(id, (await EchoBody.ReadAsync(response)).HeaderText("x-request-id"));
    }

    public static TheoryData<string> MalformedIds => new()
    {
        "has spaces in it",
        new string('a', 129),
        "quote\"d",
        "semi;colon",
        "",
    };

    [Theory]
    [MemberData(nameof(MalformedIds))]
    public async Task A_malformed_request_id_is_replaced(string id)
    {
        var port = fixture.Gateway.Port;
        var response = await RawHttp.SendAsync(port, $"""
            GET /svc/m/echo/rid-bad HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            X-Request-ID: {id}
            """);

        Assert.True(response.Status == 200, response.ToString());
        var returned = response.Header("X-Request-ID")!;
        Assert.NotEqual(id, returned);
        Assert.Matches(GeneratedId(), returned);
        Assert.Equal(returned, EchoBody.Parse(response.BodyText).HeaderText("x-request-id"));
    }

    [Fact]
    public async Task Two_request_ids_are_replaced_by_one_new_one()
    {
        var port = fixture.Gateway.Port;
        var response = await RawHttp.SendAsync(port, $"""
            GET /svc/m/echo/rid-two HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            X-Request-ID: first-id
            X-Request-ID: second-id
            """);

        Assert.True(response.Status == 200, response.ToString());
        Assert.Matches(GeneratedId(), response.Header("X-Request-ID")!);
        Assert.Equal(response.Header("X-Request-ID")!, EchoBody.Parse(response.BodyText).HeaderText("x-request-id"));
    }

    [Theory]
    [InlineData("/svc/m/echo/any", true, 200)]
    [InlineData("/svc/m/echo/any", false, 401)]
    [InlineData("/svc/nosuch/x", true, 404)]
    [InlineData("/nothing", true, 404)]
    [InlineData("/svc/dead/x", true, 502)]
    [InlineData("/health", false, 200)]
    [InlineData("/ready", false, 200)]
    [InlineData("/api/health/status", false, 200)]
    [InlineData("/", false, 200)]
    public async Task Every_response_carries_a_request_id(string path, bool authorized, int status)
    {
        foreach (var sent in new[] { null, "given-id-1" })
        {
            using var request = authorized ? fixture.Authorized(HttpMethod.Get, path) : new HttpRequestMessage(HttpMethod.Get, fixture.Gateway.BaseUrl + path);
            if (sent is not null)
            {
                request.Headers.Add("X-Request-ID", sent);
            }

            using var response = await fixture.Gateway.Client.SendAsync(request);

            Assert.Equal((HttpStatusCode)status, response.StatusCode);
            var id = Assert.Single(response.Headers.GetValues("X-Request-ID"));
            if (sent is null)
            {
                Assert.Matches(GeneratedId(), id);
            }
            else
            {
                Assert.Equal(sent, id);
            }
            if (status >= 400)
            {
                // Error bodies name the same id, so a client can quote it.
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.Equal(id, doc.RootElement.GetProperty("request_id").GetString());
            }
        }
    }

    private async Task<EchoBody> EchoFromAsync(string source, Dictionary<string, string> headers)
    {
        using var client = TestHttp.Create(source);
        using var request = fixture.Authorized(HttpMethod.Get, "/svc/m/echo/forwarded");
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await EchoBody.ReadAsync(response);
    }
}
