using System.Text;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Retry what was never answered: a backend's 429 or 503, before any byte reached the client, sends
/// a request that can be sent again whole (no body, or one within RETRY_BUFFER_KB) to another backend, honouring the refusing backend's
/// Retry-After (it takes nothing until then); the response says how many backends were tried. A
/// body over RETRY_BUFFER_KB, a model with no other backend and MAX_ATTEMPTS=1 get the backend's own answer.
/// Every case runs on both request paths and transports.
/// </summary>
public sealed class RefusalRetryTests
{
    private const string Key = "k-retry";

    [Theory]
    [MemberData(nameof(Cases))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_refusal_goes_to_another_backend_and_the_refuser_rests_for_its_retry_after(string variant, string refusal)
    {
        var answer = refusal == "429+retry-after"
            ? "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 4\r\n\r\nbusy"
            : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
        using var refuser = new ScriptedBackend { HealthyChecks = true, Answer = (Encoding.ASCII.GetBytes(answer), false) };
        using var good = new ScriptedBackend { HealthyChecks = true, Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false) };
        await using var gateway = await StartAsync(variant, refuser, good);
        good.KeepBodies = true;

        // Two GETs, then two chat requests: a body within RETRY_BUFFER_KB is sent to the next backend whole.
        var responses = new List<RawResponse>();
        for (var i = 0; i < 4; i++)
        {
            var body = i < 2 ? null : Encoding.ASCII.GetBytes($"{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi {i}\"}}]}}");
            var head = body is null
                ? $"GET /svc/m/v1/models?i={i} HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close"
                : $"POST /svc/m/v1/chat/completions HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/json\nContent-Length: {body.Length}\nConnection: close";
            responses.Add(await SendWholeAsync(gateway.Port, head, body));
        }

        Assert.All(responses, r => Assert.True(r.Status == 200 && r.BodyText == "ok", r.ToString()));
        var retried = responses.Where(r => r.Header("X-EdgeProxy-Attempts") is not null).ToList();
        Assert.NotEmpty(retried);
        Assert.All(retried, r => Assert.Equal("2", r.Header("X-EdgeProxy-Attempts")));
        if (refusal == "429+retry-after")
        {
            // Refused once, then left alone for its 30 s; a 429 is not a failure.
            Assert.Equal(1, refuser.Requests);
            var status = JsonNode.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"))!["data"]!["svc"]!["m"]!;
            var backend = status.AsArray().Single(b => b!["id"]!.GetValue<string>() == "refuser")!;
            Assert.NotNull(backend["held_until"]);
            Assert.False(backend["ejected"]!.GetValue<bool>());
        }
        Assert.Equal(4, good.Requests);
        // The replayed bodies arrived whole and unchanged.
        Assert.Equal(["{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi 2\"}]}", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi 3\"}]}"],
            good.Bodies.Where(b => b.Length > 0));
    }

    public static TheoryData<string, string> Cases => GatewayVariant.With("429+retry-after", "503");

    /// <summary>
    /// Head and body in one write: the fast path keeps a body for a replay when it arrived with the
    /// head (one it streams as it comes is not kept; the general path keeps any within RETRY_BUFFER_KB).
    /// </summary>
    internal static async Task<RawResponse> SendWholeAsync(int port, string head, byte[]? body)
    {
        await using var connection = await RawConnection.OpenAsync(port);
        await connection.WriteAsync([.. RawHttp.Head(head), .. body ?? []]);
        return await connection.ReadResponseAsync();
    }

    [Theory]
    [MemberData(nameof(Kept))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_refusal_that_cannot_go_elsewhere_reaches_the_client(string variant, string why)
    {
        using var refuser = new ScriptedBackend
        {
            HealthyChecks = true,
            Answer = ("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"u8.ToArray(), false),
        };
        using var good = new ScriptedBackend { HealthyChecks = true, Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false) };
        await using var gateway = why == "alone" ? await StartAsync(variant, refuser)
            : await StartAsync(variant, refuser, good, why == "max_attempts" ? new() { ["MAX_ATTEMPTS"] = "1" } : new() { ["RETRY_BUFFER_KB"] = "1" });

        // Round-robin over two backends: one of two requests lands on the refuser first.
        // Over RETRY_BUFFER_KB (1 KiB here): the body is not kept, so it is not sent again.
        var body = why == "big_body" ? "{\"model\":\"m\",\"pad\":\"" + new string('x', 2048) + "\"}" : null;
        var responses = new List<RawResponse>();
        for (var i = 0; i < 2; i++)
        {
            var head = body is null
                ? $"GET /svc/m/v1/models HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close"
                : $"POST /svc/m/v1/chat/completions HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/json\nContent-Length: {body.Length}\nConnection: close";
            responses.Add(await RawHttp.SendAsync(gateway.Port, head, body is null ? null : Encoding.ASCII.GetBytes(body)));
        }

        var refused = responses.Where(r => r.Status == 429).ToList();
        Assert.True(refused.Count == (why == "alone" ? 2 : 1), string.Join("\n", responses));
        Assert.All(refused, r => Assert.Equal("7", r.Header("Retry-After")));
        Assert.All(responses, r => Assert.Null(r.Header("X-EdgeProxy-Attempts")));
        Assert.Equal(refused.Count, refuser.Requests);
    }

    public static TheoryData<string, string> Kept => GatewayVariant.With("big_body", "alone", "max_attempts");

    private static Task<GatewayProcess> StartAsync(string variant, ScriptedBackend refuser, ScriptedBackend? good = null, Dictionary<string, string>? more = null)
    {
        var backends = good is null ? new[] { ("refuser", refuser.Url, 1) } : new[] { ("refuser", refuser.Url, 1), ("good", good.Url, 1) };
        var json = JsonNode.Parse(BackendsJson.For("svc", "m", backends))!;
        json["services"]!["svc"]!["models"]!["m"]!["affinity"] = "none";
        var environment = new Dictionary<string, string>(more ?? []) { ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600" };
        return GatewayProcess.StartAsync(json.ToJsonString(), GatewayVariant.Parse(variant).Apply(environment));
    }
}

/// <summary>
/// A backend that hangs (no first byte within FIRST_BYTE_TIMEOUT): a safe read (GET) without a body
/// is asked of another backend on a fresh timer, so the client gets an answer instead of a 504; a
/// POST is not repeated. Both request paths and transports.
/// </summary>
public sealed class HungBackendRetryTests
{
    private const string Key = "k-hung";

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_get_the_hung_backend_never_answered_is_answered_by_another(string variant)
    {
        using var hung = new HoldingBackend();
        using var good = new ScriptedBackend { HealthyChecks = true, Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false) };
        var json = JsonNode.Parse(BackendsJson.For("svc", "m", ("hung", hung.Url, 1), ("good", good.Url, 1)))!;
        json["services"]!["svc"]!["models"]!["m"]!["affinity"] = "none";
        await using var gateway = await GatewayProcess.StartAsync(json.ToJsonString(), GatewayVariant.Parse(variant).Apply(new Dictionary<string, string>
        {
            ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600", ["FIRST_BYTE_TIMEOUT"] = "0.5", ["PASSIVE_FAILURE_THRESHOLD"] = "100",
        }));

        var gets = new List<RawResponse>();
        for (var i = 0; i < 2; i++)
        {
            gets.Add(await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/v1/models?i={i} HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close", timeout: TimeSpan.FromSeconds(20)));
        }
        Assert.All(gets, r => Assert.True(r.Status == 200 && r.BodyText == "ok", r.ToString()));
        var retried = gets.Where(r => r.Header("X-EdgeProxy-Attempts") is not null).ToList();
        Assert.NotEmpty(retried);   // round-robin sends at least one of the two to the hung backend first
        Assert.All(retried, r => Assert.Equal("2", r.Header("X-EdgeProxy-Attempts")));
        Assert.Equal(2, good.Requests);

        // A POST may have had effects: it is not repeated, the client gets the timeout.
        const string body = "{\"model\":\"m\"}";
        var posts = new List<RawResponse>();
        for (var i = 0; i < 2; i++)
        {
            posts.Add(await RawHttp.SendAsync(gateway.Port, $"POST /svc/m/v1/chat/completions HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/json\nContent-Length: {body.Length}\nConnection: close",
                Encoding.ASCII.GetBytes(body), timeout: TimeSpan.FromSeconds(20)));
        }
        Assert.Equal([200, 504], posts.Select(r => r.Status).Order());
        Assert.Equal(3, good.Requests);
    }
}

/// <summary>
/// A backend that closes the connection without answering (killed, restarted) after a request with a
/// body reached it: a POST to an inference endpoint changes nothing on the backend, so its kept body
/// goes to another backend once; any other POST gets the 502 (it may have had effects). Both request
/// paths and transports.
/// </summary>
public sealed class DroppedRequestRetryTests
{
    private const string Key = "k-dropped";

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task An_inference_call_the_backend_dropped_is_answered_by_another_once(string variant)
    {
        using var dropper = new ScriptedBackend { HealthyChecks = true, Answer = ([], true) };
        using var good = new ScriptedBackend { HealthyChecks = true, Answer = ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false), KeepBodies = true };
        await using (var gateway = await StartAsync(variant, dropper, good))
        {
            var chats = new List<RawResponse>();
            for (var i = 0; i < 3; i++)
            {
                chats.Add(await PostAsync(gateway.Port, "/svc/m/v1/chat/completions?i=" + i, $"{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi {i}\"}}]}}"));
            }
            Assert.All(chats, r => Assert.True(r.Status == 200 && r.BodyText == "ok", r.ToString()));
            var retried = chats.Where(r => r.Header("X-EdgeProxy-Attempts") is not null).ToList();
            Assert.NotEmpty(retried);   // round-robin sends at least one of three to the dropper first
            Assert.All(retried, r => Assert.Equal("2", r.Header("X-EdgeProxy-Attempts")));
            Assert.Equal(retried.Count, dropper.Requests);
            // Every body arrived whole, once each, at the backend that answered.
            Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi {i}\"}}]}}"), good.Bodies);

            // Not an inference endpoint: the request may have done something, so the client gets the failure.
            var dropsBefore = dropper.Requests;
            var uploads = new List<RawResponse>();
            for (var i = 0; i < 3; i++)
            {
                uploads.Add(await PostAsync(gateway.Port, "/svc/m/v1/files", "{\"purpose\":\"batch\"}"));
            }
            Assert.Equal(dropper.Requests - dropsBefore, uploads.Count(r => r.Status == 502));
            Assert.Contains(uploads, r => r.Status == 502);
            Assert.All(uploads, r => Assert.Null(r.Header("X-EdgeProxy-Attempts")));
        }

        // Two backends that both drop it: sent again once, not until MAX_ATTEMPTS (the request may be what kills them).
        using var second = new ScriptedBackend { HealthyChecks = true, Answer = ([], true) };
        await using var both = await StartAsync(variant, dropper, second);
        var before = dropper.Requests;
        var response = await PostAsync(both.Port, "/svc/m/v1/chat/completions", "{\"model\":\"m\",\"messages\":[]}");
        Assert.Equal(502, response.Status);
        Assert.Equal(2, dropper.Requests - before + second.Requests);
    }

    private static Task<RawResponse> PostAsync(int port, string target, string body)
        => RefusalRetryTests.SendWholeAsync(port,
            $"POST {target} HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nContent-Type: application/json\nContent-Length: {body.Length}\nConnection: close",
            Encoding.ASCII.GetBytes(body));

    private static Task<GatewayProcess> StartAsync(string variant, ScriptedBackend first, ScriptedBackend second)
    {
        var json = JsonNode.Parse(BackendsJson.For("svc", "m", ("first", first.Url, 1), ("second", second.Url, 1)))!;
        json["services"]!["svc"]!["models"]!["m"]!["affinity"] = "none";
        return GatewayProcess.StartAsync(json.ToJsonString(), GatewayVariant.Parse(variant).Apply(new Dictionary<string, string>
        {
            ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600", ["PASSIVE_FAILURE_THRESHOLD"] = "100",
        }));
    }
}
