using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// The path after `/{service}/{model}` and the raw query reach the backend byte for
/// byte. Requests go out as raw bytes on a socket: HttpClient would normalise the target itself.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class RequestTargetTests(EchoGatewayFixture fixture) : IClassFixture<EchoGatewayFixture>
{
    [Theory]
    [InlineData("/echo/a%2Fb/c?path=%2Fx%2F")]
    [InlineData("/echo/sp%20ace?q=a%20b+c&plus=+")]
    [InlineData("/echo/x?enc=%41%42&lower=%4a%2f")]
    [InlineData("/echo/x?k=1&k=2&k=1")]
    [InlineData("/echo/x?empty=&flag&=v&&last=")]
    [InlineData("/echo/caf%C3%A9/%E2%82%AC?name=%E4%B8%AD%E6%96%87&e=%F0%9F%98%80")]
    [InlineData("/echo/x?q=a?b/c:d@e!$'()*,;")]
    [InlineData("/echo/x?pct=%25&double=%2525&plus=%2B")]
    [InlineData("/echo/a;b=c/d?x")]
    [InlineData("/echo//double//slash/?x=1")]
    [InlineData("/echo/x?")]
    [InlineData("/echo/%7Euser/~user?%7E=~")]
    public async Task Path_and_query_reach_the_backend_byte_for_byte(string rest)
    {
        var echo = await SendRawAsync("/svc/m" + rest);

        Assert.Equal(rest, echo.RawTarget);
        var question = rest.IndexOf('?');
        Assert.Equal(question < 0 ? "" : rest[question..], echo.Query);
    }

    [Theory]
    [InlineData("/echo/a..b/c.d/.hidden/...?x=../..")]
    [InlineData("/echo/v1.2/file.tar.gz?q=.")]
    public async Task Dots_inside_segments_and_in_the_query_are_ordinary_bytes(string rest)
    {
        var echo = await SendRawAsync("/svc/m" + rest);

        Assert.Equal(rest, echo.RawTarget);
    }

    /// <summary>
    /// A "." or ".." segment would be resolved by the backend (RFC 3986 §5.2.4) and could climb
    /// above the path of the backend's configured URL (here `prefixed` = {backend}/echo) to paths the
    /// gateway was never set up to expose, with the gateway's upstream key attached. Refused, unsent.
    /// </summary>
    [Theory]
    [InlineData("/svc/prefixed/../status/200")]
    [InlineData("/svc/prefixed/%2e%2e/status/200")]
    [InlineData("/svc/prefixed/%2E./status/200")]
    [InlineData("/svc/prefixed/a/../../status/200")]
    [InlineData("/svc/prefixed/..%2fstatus/200")]
    [InlineData("/svc/prefixed/..%5Cstatus/200")]
    [InlineData("/svc/prefixed/./x")]
    [InlineData("/svc/prefixed/..")]
    [InlineData("/svc/prefixed/..?x=1")]
    public async Task Dot_segments_are_refused_without_an_upstream_call(string target)
    {
        var port = fixture.Gateway.Port;
        var before = await fixture.BackendRequestsAsync();

        var response = await RawHttp.SendAsync(port, $"""
            GET {target} HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            """);

        Assert.True(response.Status == 400, response.ToString());
        JsonAssert.ErrorBody(response.BodyText, "invalid_path");
        Assert.Equal(before, await fixture.BackendRequestsAsync());
    }

    [Theory]
    [InlineData("/svc/prefixed", "/echo/")]
    [InlineData("/svc/prefixed/", "/echo/")]
    [InlineData("/svc/prefixed?x=1", "/echo/?x=1")]
    [InlineData("/svc/prefixed/?x=%2F", "/echo/?x=%2F")]
    [InlineData("/svc/prefixed/more?x=1", "/echo/more?x=1")]
    public async Task No_rest_or_a_trailing_slash_goes_to_the_backend_root(string target, string expectedRawTarget)
    {
        // The `prefixed` model's URL is {backend}/echo, so "the backend's /" is /echo/ here.
        var echo = await SendRawAsync(target);

        Assert.Equal(expectedRawTarget, echo.RawTarget);
    }

    [Theory]
    [InlineData("/svc/m")]
    [InlineData("/svc/m/")]
    [InlineData("/svc/m?x=1")]
    public async Task No_rest_on_a_plain_backend_URL_requests_its_root(string target)
    {
        var port = fixture.Gateway.Port;
        var before = await fixture.BackendHitsAsync("/");

        var response = await RawHttp.SendAsync(port, $"""
            GET {target} HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            """);

        // The test backend has nothing at `/`: its own 404 (X-Backend-Id) proves the gateway asked for `/`.
        Assert.Equal(404, response.Status);
        Assert.Equal("b1", response.Header("X-Backend-Id"));
        using var doc = JsonDocument.Parse(response.BodyText);
        Assert.Equal("/", doc.RootElement.GetProperty("path").GetString());
        Assert.Equal(before + 1, await fixture.BackendHitsAsync("/"));
    }

    private async Task<EchoBody> SendRawAsync(string target)
    {
        var port = fixture.Gateway.Port;
        var response = await RawHttp.SendAsync(port, $"""
            GET {target} HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            """);
        Assert.True(response.Status == 200, response.ToString());
        return EchoBody.Parse(response.BodyText);
    }
}
