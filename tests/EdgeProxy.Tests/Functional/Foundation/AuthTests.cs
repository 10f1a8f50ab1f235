using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// One backend behind two gateways: `Secured` (BACKEND_API_KEY set, BACKEND_AUTH_MODE=x-api-key) and
/// `Open` (no BACKEND_API_KEY, default auth mode). Each model of service `svc` configures the upstream
/// key differently, so the echo shows which key the gateway sent and how.
/// </summary>
public sealed class AuthFixture : IAsyncLifetime
{
    public const string GatewayKey = "auth-gateway-key-9b7e";

    internal BackendProcess Backend { get; private set; } = null!;

    /// <summary>BACKEND_API_KEY=<see cref="GatewayKey"/>, BACKEND_AUTH_MODE=x-api-key.</summary>
    internal GatewayProcess Secured { get; private set; } = null!;

    /// <summary>BACKEND_API_KEY empty (auth off), BACKEND_AUTH_MODE unset (Authorization).</summary>
    internal GatewayProcess Open { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Backend = await BackendProcess.StartAsync("auth-b");
        try
        {
            var url = Backend.Url;
            var securedStart = GatewayProcess.StartAsync(
                BackendsJson.Models("svc",
                    ("own-bearer", [BackendsJson.Backend("ob", url, apiKey: "upstream-own-bearer", authMode: "Authorization")]),
                    ("own-xkey", [BackendsJson.Backend("ox", url, apiKey: "upstream-own-xkey", authMode: "x-api-key")]),
                    ("own-default", [BackendsJson.Backend("od", url, apiKey: "upstream-own-default")]),
                    ("global", [BackendsJson.Backend("g", url)]),
                    ("global-bearer", [BackendsJson.Backend("gb", url, authMode: "Authorization")])),
                new Dictionary<string, string> { ["BACKEND_API_KEY"] = GatewayKey, ["BACKEND_AUTH_MODE"] = "x-api-key" });
            var openStart = GatewayProcess.StartAsync(
                BackendsJson.Models("svc",
                    ("nokey", [BackendsJson.Backend("n", url)]),
                    ("own", [BackendsJson.Backend("o", url, apiKey: "upstream-open-own")])),
                new Dictionary<string, string> { ["BACKEND_API_KEY"] = "" });
            await Task.WhenAll(securedStart, openStart);
            Secured = securedStart.Result;
            Open = openStart.Result;
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var gateway in new[] { Secured, Open })
        {
            if (gateway is not null)
            {
                await gateway.DisposeAsync();
            }
        }
        if (Backend is not null)
        {
            await Backend.DisposeAsync();
        }
    }
}

/// <summary>Client authentication and the upstream key.</summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class AuthTests(AuthFixture fixture) : IClassFixture<AuthFixture>
{
    private const string Key = AuthFixture.GatewayKey;

    /// <summary>`{key}` in a header value stands for the gateway key; null means the header is not sent.</summary>
    [Theory]
    [InlineData(null, null, 401)]
    [InlineData("Bearer wrong-key", null, 401)]
    [InlineData(null, "wrong-key", 401)]
    [InlineData("Bearer {key}", null, 200)]
    [InlineData("bearer {key}", null, 200)]
    [InlineData("BEARER {key}", null, 200)]
    [InlineData(null, "{key}", 200)]
    [InlineData("Bearer {key}", "{key}", 200)]
    [InlineData("{key}", null, 401)]
    [InlineData("Basic {key}", null, 401)]
    [InlineData("Bearer", null, 401)]
    [InlineData("Bearer auth-gateway-key-9b7", null, 401)]
    [InlineData("Bearer {key}x", null, 401)]
    [InlineData(null, "{key}{key}", 401)]
    public async Task Client_key_matrix(string? authorization, string? apiKey, int expected)
    {
        var path = $"/echo/auth/{Guid.NewGuid():N}";
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Secured.BaseUrl + "/svc/own-xkey" + path);
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization.Replace("{key}", Key));
        }
        if (apiKey is not null)
        {
            request.Headers.TryAddWithoutValidation("X-API-Key", apiKey.Replace("{key}", Key));
        }

        using var response = await fixture.Secured.Client.SendAsync(request);

        Assert.Equal((HttpStatusCode)expected, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        if (expected == 401)
        {
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            JsonAssert.ErrorBody(body, "invalid_api_key");
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
            Assert.Equal(0, await HitsAsync(path));
        }
        else
        {
            // The client's credentials are replaced by the backend's own key, never passed on.
            var echo = EchoBody.Parse(body);
            Assert.Equal("upstream-own-xkey", echo.HeaderText("x-api-key"));
            Assert.Null(echo.Header("authorization"));
        }
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/ready")]
    [InlineData("/api/health/status")]
    [InlineData("/")]
    public async Task Public_endpoints_need_no_key(string path)
    {
        using var response = await fixture.Secured.Client.GetAsync(fixture.Secured.BaseUrl + path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Service_status_needs_the_key()
    {
        var url = fixture.Secured.BaseUrl + "/api/health/status/svc";
        using var anonymous = await fixture.Secured.Client.GetAsync(url);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        JsonAssert.ErrorBody(await anonymous.Content.ReadAsStringAsync(), "invalid_api_key");

        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Add("X-API-Key", Key);
        using var authorized = await fixture.Secured.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, authorized.StatusCode);
        Assert.Contains("\"own-xkey\"", await authorized.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Backend api_key over the global key; backend auth_mode over BACKEND_AUTH_MODE (x-api-key on
    /// this gateway). The client sends both of its own credential headers; exactly the configured
    /// upstream header arrives.
    /// </summary>
    [Theory]
    [InlineData("own-bearer", "authorization", "Bearer upstream-own-bearer", "x-api-key")]
    [InlineData("own-xkey", "x-api-key", "upstream-own-xkey", "authorization")]
    [InlineData("own-default", "x-api-key", "upstream-own-default", "authorization")]
    [InlineData("global", "x-api-key", Key, "authorization")]
    [InlineData("global-bearer", "authorization", "Bearer " + Key, "x-api-key")]
    public async Task Upstream_key_and_header_follow_the_precedence(string model, string header, string value, string absentHeader)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{fixture.Secured.BaseUrl}/svc/{model}/echo/key");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + Key);
        request.Headers.TryAddWithoutValidation("X-API-Key", Key);
        request.Content = new StringContent("{}");

        using var response = await fixture.Secured.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await EchoBody.ReadAsync(response);
        Assert.Equal(value, echo.HeaderText(header));
        Assert.Null(echo.Header(absentHeader));
    }

    [Fact]
    public async Task Empty_BACKEND_API_KEY_turns_auth_off_with_a_warning_and_sends_no_upstream_key()
    {
        await fixture.Open.Output.WaitForLineAsync(l => l.Contains("BACKEND_API_KEY is empty") && l.Contains("authentication is OFF"), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(fixture.Secured.Output.Lines, l => l.Contains("BACKEND_API_KEY is empty"));

        // No key needed; a key the client sends anyway is not passed on; no key of our own is added.
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Open.BaseUrl + "/svc/nokey/echo/open");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer client-own-secret");
        request.Headers.TryAddWithoutValidation("X-API-Key", "client-own-secret");
        using var response = await fixture.Open.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await EchoBody.ReadAsync(response);
        Assert.Null(echo.Header("authorization"));
        Assert.Null(echo.Header("x-api-key"));

        using var anonymous = await fixture.Open.Client.GetAsync(fixture.Open.BaseUrl + "/svc/nokey/echo/anonymous");
        Assert.Equal(HttpStatusCode.OK, anonymous.StatusCode);
    }

    [Fact]
    public async Task Backend_key_without_auth_mode_uses_the_default_Authorization_mode()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Open.BaseUrl + "/svc/own/echo/default-mode");
        request.Headers.TryAddWithoutValidation("X-API-Key", "client-own-secret");

        using var response = await fixture.Open.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await EchoBody.ReadAsync(response);
        Assert.Equal("Bearer upstream-open-own", echo.HeaderText("authorization"));
        Assert.Null(echo.Header("x-api-key"));
    }

    private async Task<long> HitsAsync(string path)
    {
        var stats = await fixture.Backend.StatsAsync();
        return stats.GetProperty("by_path").TryGetProperty(path, out var n) ? n.GetInt64() : 0;
    }
}
