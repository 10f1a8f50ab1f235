using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// A slow client is never the backend's fault. Time spent waiting for a client's request body runs
/// on CLIENT_BODY_TIMEOUT (408 <c>client_body_timeout</c>, logged as the client's); the backend's
/// FIRST_BYTE_TIMEOUT starts when the request is completely sent. With a first-byte timeout of
/// 1 s, a body that trickles in over 2.4 s still gets its answer; clients that stall get 408, and
/// even with a passive-failure threshold of 1 and ON_ALL_UNHEALTHY=fail the backend stays in.
/// (Before: the fast path answered 504 upstream_first_byte_timeout and ejected the backend; the
/// general path answered 400 once the first-byte timer ran out under the trickling body.)
/// </summary>
public sealed class SlowClientTests
{
    private const string Key = "k-slow";

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_slow_body_runs_on_the_clients_timer_and_never_ejects_the_backend(string variant)
    {
        using var backend = new ScriptedBackend { Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false) };
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.ClientIpAffinity(BackendsJson.For("svc", "m", ("only", backend.Url, 1))),
            GatewayVariant.Parse(variant).Apply(new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600",
                ["FIRST_BYTE_TIMEOUT"] = "1", ["CLIENT_BODY_TIMEOUT"] = "1.5",
                ["PASSIVE_FAILURE_THRESHOLD"] = "1", ["ON_ALL_UNHEALTHY"] = "fail",
            }));
        const string head = $"POST /svc/m/v1/completions HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/json\nContent-Length: 8";

        // 1. A body trickling in, one byte every 300 ms (2.4 s in all, past the first-byte timeout):
        //    each wait is within CLIENT_BODY_TIMEOUT, so the request goes through.
        await using (var trickle = await RawConnection.OpenAsync(gateway.Port))
        {
            await trickle.WriteAsync(RawHttp.Head(head));
            foreach (var b in "{\"a\":12}"u8.ToArray())
            {
                await Task.Delay(300);   // pacing the slow client, not waiting for a condition
                await trickle.WriteAsync([b]);
            }
            var response = await trickle.ReadResponseAsync();
            Assert.True(response.Status == 200, response.ToString());
            Assert.Equal("ok", response.BodyText);
        }

        // 2. Six clients that stall after two bytes get 408 client_body_timeout.
        var stalled = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
        {
            await using var connection = await RawConnection.OpenAsync(gateway.Port);
            await connection.WriteAsync(RawHttp.Head(head));
            await connection.WriteAsync("{\""u8.ToArray());
            return await connection.ReadResponseAsync();
        }));
        foreach (var response in stalled)
        {
            Assert.True(response.Status == 408, response.ToString());
            using var error = JsonDocument.Parse(response.Body);
            Assert.Equal("client_body_timeout", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        await gateway.Output.WaitForLineAsync(l => l.Contains("client's request body failed (client_body_timeout)", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(gateway.Output.Lines, l => l.Contains("ejected", StringComparison.Ordinal));

        // 3. The backend was never counted as failing: not ejected, and the next request is served.
        using (var status = JsonDocument.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status")))
        {
            var only = status.RootElement.GetProperty("data").GetProperty("svc").GetProperty("m").EnumerateArray().Single();
            Assert.False(only.GetProperty("ejected").GetBoolean(), only.ToString());
        }
        var after = await RawHttp.SendAsync(gateway.Port, head + "\nConnection: close", "{\"a\":12}"u8.ToArray());
        Assert.True(after.Status == 200, after.ToString());
    }
}
