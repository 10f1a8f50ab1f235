using System.Diagnostics;
using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Unknown routes are 404 without an upstream call; a refused connection is
/// 502 and an upstream that never answers is 504 within REQUEST_TIMEOUT (1 s here), both as JSON that
/// says nothing about the exception or the backend's address.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class ErrorPathTests(ShortTimeoutFixture fixture) : IClassFixture<ShortTimeoutFixture>
{
    [Theory]
    [InlineData("/nosuch/m/echo/x", "service_not_found")]
    [InlineData("/svc/nosuch/echo/x", "model_not_found")]
    [InlineData("/svc/nosuch", "model_not_found")]
    [InlineData("/SVC/m/echo/x", "service_not_found")]
    [InlineData("/nothing", "route_not_found")]
    public async Task Unknown_routes_are_404_JSON_without_an_upstream_call(string path, string code)
    {
        var before = await fixture.BackendRequestsAsync();

        using var response = await fixture.Gateway.Client.SendAsync(fixture.Authorized(HttpMethod.Post, path));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        JsonAssert.ErrorBody(await response.Content.ReadAsStringAsync(), code);
        Assert.Equal(before, await fixture.BackendRequestsAsync());
    }

    [Fact]
    public async Task A_refused_connection_is_502_JSON_without_exception_text_or_address()
    {
        using var request = fixture.Authorized(HttpMethod.Post, "/svc/dead/v1/chat/completions");
        request.Content = new StringContent("""{"messages":[{"role":"user","content":"hi"}]}""");

        using var response = await fixture.Gateway.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        JsonAssert.ErrorBody(body, "upstream_connect_failed");
        var everything = response.Headers.ToString() + response.Content.Headers + body;
        foreach (var forbidden in new[] { "refused", "Exception", "Socket", "127.0.0.1", fixture.DeadPort.ToString(), "   at " })
        {
            Assert.DoesNotContain(forbidden, everything, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task A_backend_that_never_answers_is_504_in_about_REQUEST_TIMEOUT_and_the_backend_sees_the_abort()
    {
        var tag = "hang-" + Guid.NewGuid().ToString("N")[..8];
        var watch = Stopwatch.StartNew();

        using var response = await fixture.Gateway.Client.SendAsync(fixture.Authorized(HttpMethod.Get, $"/svc/m/hang?tag={tag}"));
        var elapsed = watch.Elapsed;

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        JsonAssert.ErrorBody(body, "upstream_first_byte_timeout");
        Assert.DoesNotContain("Exception", body);
        Assert.DoesNotContain("127.0.0.1", body);
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.9), $"504 after {elapsed.TotalMilliseconds:0} ms: before the 1 s timeout");
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"504 after {elapsed.TotalMilliseconds:0} ms");

        // The gateway dropped the upstream request: the backend's RequestAborted fired for it.
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var stats = await fixture.Backend.StatsAsync();
            if (stats.GetProperty("aborted").TryGetProperty(tag, out var n) && n.GetInt64() == 1)
            {
                break;
            }
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"backend did not see the abort: {stats}");
            await Task.Delay(25);
        }
    }

    [Fact]
    public async Task A_backend_error_status_is_relayed_not_rewritten()
    {
        using var response = await fixture.Gateway.Client.SendAsync(fixture.Authorized(HttpMethod.Get, "/svc/m/status/503"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("b1", Assert.Single(response.Headers.GetValues("X-Backend-Id")));
        Assert.Contains("\"status\":503", await response.Content.ReadAsStringAsync());
    }
}
