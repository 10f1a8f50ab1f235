using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Backends close idle keep-alive connections on their own schedule (uvicorn after 5 s, others
/// sooner), without a `Connection: close`. A pooled connection the backend already closed must
/// cost no failed request: a request without a body is sent again on a fresh connection, and one
/// with a body is only ever sent on a connection checked to be open.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class StaleConnectionTests : IAsyncLifetime
{
    private readonly ScriptedBackend _backend = new()
    {
        Answer = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false),
        CloseAfter = TimeSpan.FromMilliseconds(50),
    };
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("closing", _backend.Url, 1)),
            new Dictionary<string, string> { ["BACKEND_API_KEY"] = "k-stale", ["HEALTH_CHECK_INTERVAL"] = "3600" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        _backend.Dispose();
    }

    [Theory]
    [InlineData("GET", null)]
    [InlineData("POST", "{\"prompt\":\"hi\"}")]
    public async Task Requests_after_the_backend_closed_its_idle_connections_all_succeed(string method, string? body)
    {
        var statuses = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            var head = $"{method} /svc/m/v1/x{i} HTTP/1.1\nHost: gw\nAuthorization: Bearer k-stale" + (body is null ? "" : $"\nContent-Length: {body.Length}");
            var response = await RawHttp.SendAsync(_gateway.Port, head, body is null ? null : Encoding.ASCII.GetBytes(body));
            statuses.Add(response.Status);
            Assert.True(response.Status == 200, response.ToString());
            Assert.Equal("ok", response.BodyText);
            // Past the backend's idle close (50 ms): the gateway's pooled connection is now stale.
            await Task.Delay(250);
        }

        Assert.Equal([200, 200, 200, 200], statuses);
        Assert.True(_backend.Requests >= 4, $"backend answered {_backend.Requests} requests");
    }
}
