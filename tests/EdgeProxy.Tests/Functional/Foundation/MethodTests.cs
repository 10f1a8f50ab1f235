using System.Net;
using System.Net.Http.Headers;
using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Every contract method reaches the backend with method, path and body intact;
/// any other method is refused with 405 before an upstream call.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class MethodTests(EchoGatewayFixture fixture) : IClassFixture<EchoGatewayFixture>
{
    [Theory]
    [InlineData("GET", false)]
    [InlineData("POST", true)]
    [InlineData("PUT", true)]
    [InlineData("DELETE", true)]
    [InlineData("DELETE", false)]
    [InlineData("PATCH", true)]
    [InlineData("OPTIONS", false)]
    public async Task Method_path_and_body_reach_the_backend_intact(string method, bool withBody)
    {
        var path = $"/echo/{method.ToLowerInvariant()}/{Guid.NewGuid():N}/a%20b";
        using var request = fixture.Authorized(new HttpMethod(method), "/svc/m" + path + "?q=1&q=2");
        byte[]? body = null;
        if (withBody)
        {
            body = Encoding.UTF8.GetBytes($"{{\"method\":\"{method}\",\"text\":\"grüße € 😀\"}}");
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using var response = await fixture.Gateway.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("b1", Assert.Single(response.Headers.GetValues("X-Backend-Id")));
        var echo = await EchoBody.ReadAsync(response);
        Assert.Equal(method, echo.Method);
        Assert.Equal(path + "?q=1&q=2", echo.RawTarget);
        if (body is null)
        {
            Assert.Equal(0, echo.BodyLength);
        }
        else
        {
            Assert.Equal(body.Length, echo.BodyLength);
            Assert.Equal(Bodies.Sha256(body), echo.BodySha256);
            Assert.Equal("application/json", echo.HeaderText("content-type"));
        }
    }

    [Fact]
    public async Task HEAD_is_forwarded_and_answered_with_headers_only()
    {
        var path = $"/echo/head/{Guid.NewGuid():N}";
        var port = fixture.Gateway.Port;

        // Raw, with Connection: close, so any body byte the gateway wrongly sent would be read back.
        var response = await RawHttp.SendAsync(port, $"""
            HEAD /svc/m{path} HTTP/1.1
            Host: 127.0.0.1:{port}
            Authorization: Bearer {EchoGatewayFixture.GatewayKey}
            Connection: close
            """);

        Assert.Equal(200, response.Status);
        Assert.Equal("b1", response.Header("X-Backend-Id"));
        // The backend announces the length its GET answer would have; the gateway relays it and no body.
        Assert.True(long.Parse(response.Header("Content-Length") ?? "0") > 0, response.ToString());
        Assert.Empty(response.Body);
        Assert.Equal(1, await fixture.BackendHitsAsync(path));
    }

    [Theory]
    [InlineData("TRACE")]
    [InlineData("CONNECT_LIKE")]
    [InlineData("PROPFIND")]
    public async Task Other_methods_get_405_JSON_without_an_upstream_call(string method)
    {
        var path = $"/echo/{method.ToLowerInvariant()}/{Guid.NewGuid():N}";
        var before = await fixture.BackendRequestsAsync();
        using var request = fixture.Authorized(new HttpMethod(method), "/svc/m" + path);

        using var response = await fixture.Gateway.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        JsonAssert.ErrorBody(await response.Content.ReadAsStringAsync(), "method_not_allowed");
        Assert.Contains("GET", response.Content.Headers.Allow);
        Assert.Equal(before, await fixture.BackendRequestsAsync());
        Assert.Equal(0, await fixture.BackendHitsAsync(path));
    }
}
