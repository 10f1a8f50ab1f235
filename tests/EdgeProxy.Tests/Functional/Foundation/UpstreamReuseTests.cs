using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// No response ever reaches the wrong client through a pooled upstream connection. A backend
/// (<see cref="PoisoningBackend"/>) sends bytes after the end of a response — in a later TCP
/// segment, after the gateway has finished relaying it — or answers before reading the request
/// body and then parses that body as a request (CL.0). Were such a connection reused, the next
/// request from another client would read the stale bytes as its answer and every later one would
/// be shifted by one. After each poisoning, 1,000 sequential and then 200 concurrent requests from
/// distinct client addresses must each get the answer carrying their own id. On the fast path the
/// gateway's own pool must also close the poisoned idle connection at once (nginx's keepalive
/// module does; the general path's SocketsHttpHandler drops it when it next looks).
/// </summary>
public sealed class UpstreamReuseTests
{
    private const string Key = "k-reuse";
    private const string Injected = "GET /svc/m/echo HTTP/1.1\r\nHost: backend\r\nX-Test-Id: INJECTED\r\n\r\n";

    public static TheoryData<string, string> Cases() => GatewayVariant.With("204", "304", "head", "short-cl", "early", "early-streamed");

    [Theory]
    [MemberData(nameof(Cases))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task Every_client_gets_its_own_response_after_a_backend_poisons_a_connection(string variant, string poison)
    {
        var gatewayVariant = GatewayVariant.Parse(variant);
        using var backend = new PoisoningBackend();
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.ClientIpAffinity(BackendsJson.For("svc", "m", ("poison", backend.Url, 1))),
            gatewayVariant.Apply(new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600", ["PASSIVE_FAILURE_THRESHOLD"] = "10000",
            }));

        await PoisonAsync(gateway, backend, poison, round: 1);
        for (var i = 0; i < 1000; i++)
        {
            await AssertOwnAnswerAsync(gateway, $"s{i}", $"127.1.{i / 250}.{i % 250 + 1}");
        }

        await PoisonAsync(gateway, backend, poison, round: 2);
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => AssertOwnAnswerAsync(gateway, $"c{i}", $"127.2.{i / 250}.{i % 250 + 1}")));

        if (gatewayVariant.FastPath && poison != "early-streamed")
        {
            // Both poisoned connections were closed by the gateway, not kept (the streamed early
            // answer's connection is closed after its response, before any surplus).
            await Poll.UntilAsync(() => backend.ClosedAfterSurplus >= 2, TimeSpan.FromSeconds(5), "the gateway to close both poisoned connections");
        }
    }

    /// <summary>One poisoned exchange (its own client gets the right answer), then waits until the backend has sent the surplus.</summary>
    private static async Task PoisonAsync(GatewayProcess gateway, PoisoningBackend backend, string poison, int round)
    {
        var before = backend.Surplus;
        var id = $"p{round}";
        var auth = $"Host: gw\nAuthorization: Bearer {Key}\nX-Test-Id: {id}\nConnection: close";
        switch (poison)
        {
            case "204":
                Assert.Equal(204, (await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/poison/204 HTTP/1.1\n{auth}")).Status);
                break;
            case "304":
                Assert.Equal(304, (await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/poison/304 HTTP/1.1\n{auth}")).Status);
                break;
            case "head":
                Assert.Equal(200, (await RawHttp.SendAsync(gateway.Port, $"HEAD /svc/m/poison/head HTTP/1.1\n{auth}")).Status);
                break;
            case "short-cl":
                Assert.Equal("id=" + id, (await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/poison/short-cl HTTP/1.1\n{auth}")).BodyText);
                break;
            case "early":
                var body = Encoding.ASCII.GetBytes(Injected);
                var early = await RawHttp.SendAsync(gateway.Port, $"POST /svc/m/poison/early HTTP/1.1\n{auth}\nContent-Length: {body.Length}", body);
                Assert.Equal("id=" + id, early.BodyText);
                break;
            case "early-streamed":
                await using (var connection = await RawConnection.OpenAsync(gateway.Port))
                {
                    // The head and the body's first bytes (an empty line, which the backend skips
                    // before the request it finds in the body); the rest only once the backend has
                    // answered, so the answer arrives while the gateway is still sending the body.
                    // (SocketsHttpHandler sends the head with the body's first chunk.)
                    var injected = Encoding.ASCII.GetBytes(Injected);
                    var answered = backend.EarlyAnswers;
                    await connection.WriteAsync($"POST /svc/m/poison/early HTTP/1.1\n{auth}\nContent-Length: {injected.Length + 2}", "\r\n"u8.ToArray());
                    await Poll.UntilAsync(() => backend.EarlyAnswers > answered, TimeSpan.FromSeconds(5), "the backend's early answer");
                    await connection.WriteAsync(injected);
                    var response = await connection.ReadResponseAsync();
                    Assert.True(response.Status == 200, response.ToString());
                    Assert.Equal("id=" + id, response.BodyText);
                }
                break;
            default:
                throw new ArgumentException(poison);
        }
        await Poll.UntilAsync(() => backend.Surplus > before, TimeSpan.FromSeconds(5), $"the backend's surplus after {poison}");
    }

    private static async Task AssertOwnAnswerAsync(GatewayProcess gateway, string id, string source)
    {
        var response = await RawHttp.SendAsync(gateway.Port,
            $"GET /svc/m/echo HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nX-Test-Id: {id}\nConnection: close", sourceAddress: source);
        Assert.True(response.Status == 200 && response.BodyText == "id=" + id, $"client {source} sent id {id} and got: {response}");
    }
}
